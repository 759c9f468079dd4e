//! [`mlp_embeddings`]: the representation a backdoor detector reads in practice — the hidden
//! layer of a small network trained on the (poisoned) table — so that an evaluation can score
//! detectors on raw features and on a trained model's embeddings of the same rows.

use ndarray::Array2;
use poisonguard_core::{DataError, Dataset, Labels, derive_seed};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Hidden units of [`mlp_embeddings`].
pub const HIDDEN: usize = 32;
/// Passes over the rows of [`mlp_embeddings`].
pub const EPOCHS: usize = 40;

/// Trains a one-hidden-layer network (standardized inputs, [`HIDDEN`] ReLU units, softmax over
/// the classes; cross-entropy, minibatch SGD with momentum 0.9, learning rate 0.05, batches of
/// 32, [`EPOCHS`] epochs, He-initialised weights from `seed`) on `data`'s labels and returns the
/// dataset with its features replaced by every row's hidden activations (labels, ids and
/// sources kept). Single-threaded and seeded: the same input and seed give the same bytes.
///
/// # Errors
/// [`DataError::LabelsRequired`] without labels with two classes.
pub fn mlp_embeddings(data: &Dataset, seed: u64) -> Result<Dataset, DataError> {
    let labels = data.require_classes("mlp_embeddings")?;
    let (n, d) = (data.n_samples(), data.n_features());
    let k = labels.map().n_classes();
    let y: Vec<usize> = labels.ids().iter().map(|c| c.index()).collect();
    // standardized inputs, f64
    let x = data.features();
    let mut z = Array2::<f64>::zeros((n, d));
    for j in 0..d {
        let col = x.column(j);
        let mean = col.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let var = col.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n as f64;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        for i in 0..n {
            z[[i, j]] = (f64::from(x[[i, j]]) - mean) / sd;
        }
    }
    let mut rng = SmallRng::seed_from_u64(derive_seed(seed, 0x3E3B));
    let mut normal = |scale: f64| {
        // Box-Muller
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        scale * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let mut w1: Vec<f64> = (0..d * HIDDEN).map(|_| normal((2.0 / d as f64).sqrt())).collect();
    let mut b1 = vec![0.0; HIDDEN];
    let mut w2: Vec<f64> = (0..HIDDEN * k).map(|_| normal((2.0 / HIDDEN as f64).sqrt())).collect();
    let mut b2 = vec![0.0; k];
    let (mut v1, mut vb1, mut v2, mut vb2) =
        (vec![0.0; d * HIDDEN], vec![0.0; HIDDEN], vec![0.0; HIDDEN * k], vec![0.0; k]);
    let (lr, momentum, batch) = (0.05, 0.9, 32);
    let mut order: Vec<usize> = (0..n).collect();
    let mut shuffle_rng = SmallRng::seed_from_u64(derive_seed(seed, 0x5AF1));
    let (mut h, mut out) = (vec![0.0; HIDDEN], vec![0.0; k]);
    for _ in 0..EPOCHS {
        order.shuffle(&mut shuffle_rng);
        for chunk in order.chunks(batch) {
            let (mut g1, mut gb1, mut g2, mut gb2) =
                (vec![0.0; d * HIDDEN], vec![0.0; HIDDEN], vec![0.0; HIDDEN * k], vec![0.0; k]);
            for &i in chunk {
                let row = z.row(i);
                forward(&row.to_vec(), &w1, &b1, &w2, &b2, &mut h, &mut out);
                // softmax cross-entropy gradient: out - onehot
                out[y[i]] -= 1.0;
                let mut dh = vec![0.0; HIDDEN];
                for u in 0..HIDDEN {
                    for c in 0..k {
                        g2[u * k + c] += h[u] * out[c];
                        dh[u] += w2[u * k + c] * out[c];
                    }
                }
                for c in 0..k {
                    gb2[c] += out[c];
                }
                for u in 0..HIDDEN {
                    if h[u] <= 0.0 {
                        continue;
                    }
                    gb1[u] += dh[u];
                    for j in 0..d {
                        g1[j * HIDDEN + u] += row[j] * dh[u];
                    }
                }
            }
            let scale = lr / chunk.len() as f64;
            for (p, (v, g)) in [(&mut w1, (&mut v1, &g1)), (&mut w2, (&mut v2, &g2))]
                .into_iter()
                .chain([(&mut b1, (&mut vb1, &gb1)), (&mut b2, (&mut vb2, &gb2))])
            {
                for ((pi, vi), gi) in p.iter_mut().zip(v.iter_mut()).zip(g.iter()) {
                    *vi = momentum * *vi - scale * gi;
                    *pi += *vi;
                }
            }
        }
    }
    let mut emb = Array2::<f32>::zeros((n, HIDDEN));
    for i in 0..n {
        forward(&z.row(i).to_vec(), &w1, &b1, &w2, &b2, &mut h, &mut out);
        for u in 0..HIDDEN {
            emb[[i, u]] = h[u] as f32;
        }
    }
    let values: Vec<_> = (0..n).map(|i| labels.value_of_row(i).clone()).collect();
    let mut out_data = Dataset::new(emb)?.with_labels(Labels::from_values(&values))?;
    if let Some(ids) = data.ids() {
        out_data = out_data.with_ids(ids.to_vec())?;
    }
    if let Some(sources) = data.sources() {
        out_data = out_data.with_sources(sources.to_vec())?;
    }
    Ok(out_data)
}

/// Hidden activations `h` (ReLU) and softmax probabilities `out` of one standardized row.
fn forward(
    row: &[f64],
    w1: &[f64],
    b1: &[f64],
    w2: &[f64],
    b2: &[f64],
    h: &mut [f64],
    out: &mut [f64],
) {
    let (hidden, k) = (b1.len(), b2.len());
    for u in 0..hidden {
        let mut s = b1[u];
        for (j, &v) in row.iter().enumerate() {
            s += v * w1[j * hidden + u];
        }
        h[u] = s.max(0.0);
    }
    for c in 0..k {
        let mut s = b2[c];
        for u in 0..hidden {
            s += h[u] * w2[u * k + c];
        }
        out[c] = s;
    }
    let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for o in out.iter_mut() {
        *o = (*o - max).exp();
        total += *o;
    }
    for o in out.iter_mut() {
        *o /= total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poisonguard_core::LabelValue;

    #[test]
    fn hidden_layer_separates_the_classes_and_is_seeded() {
        // two classes on either side of a line
        let x = Array2::from_shape_fn((200, 3), |(i, j)| {
            let c = (i % 2) as f32;
            ((i * 7 + j * 13) % 17) as f32 / 17.0 + 2.0 * c * f32::from(u8::from(j == 0))
        });
        let y: Vec<LabelValue> = (0..200).map(|i| LabelValue::Int((i % 2) as i64)).collect();
        let data = Dataset::new(x).unwrap().with_labels(Labels::from_values(&y)).unwrap();
        let a = mlp_embeddings(&data, 1).unwrap();
        assert_eq!(a.n_features(), HIDDEN);
        assert_eq!(a.features(), mlp_embeddings(&data, 1).unwrap().features());
        assert_ne!(a.features(), mlp_embeddings(&data, 2).unwrap().features());
        // the class means of the embeddings differ
        let mean = |c: usize| -> Vec<f32> {
            let rows: Vec<usize> = (0..200).filter(|i| i % 2 == c).collect();
            a.features()
                .select(ndarray::Axis(0), &rows)
                .mean_axis(ndarray::Axis(0))
                .unwrap()
                .to_vec()
        };
        let gap: f32 = mean(0).iter().zip(mean(1)).map(|(p, q)| (p - q).abs()).sum();
        assert!(gap > 1.0, "{gap}");
        assert!(mlp_embeddings(&Dataset::new(Array2::zeros((4, 2))).unwrap(), 0).is_err());
    }
}
