//! Fitted states that merge: a detector fitted on shards of rows (summaries merged, then every
//! shard scored) equals the detector fitted on all rows, bit for bit where the summary is exact
//! (ECOD's sorted columns) and up to floating-point rounding where it is a sum (PCA's and spectral
//! signatures' co-moment matrices), globally and per class, with a class absent from a shard.

use poisonguard::{Dataset, Detection, FittedDetector, ParamGuard};
use poisonguard_io::{LoadOptions, load};
use poisonguard_outlier::{EcodParams, PcaParams};

fn digits() -> Dataset {
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    load(concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/digits/digits.parquet"), &opts)
        .expect("shipped digits")
        .into_parts()
        .0
}

/// Three shards of unequal size in row order; the middle one holds no row of class 9.
fn shards(data: &Dataset) -> (Vec<Dataset>, Dataset) {
    let labels = data.labels().expect("labelled");
    let nine = poisonguard::LabelValue::Int(9);
    let n = data.n_samples();
    let mut parts: Vec<Vec<usize>> = vec![(0..400).collect(), Vec::new(), (1100..n).collect()];
    let mut moved = Vec::new();
    for i in 400..1100 {
        if labels.value_of_row(i) == &nine { moved.push(i) } else { parts[1].push(i) }
    }
    parts[2].extend(moved);
    let order: Vec<usize> = parts.concat();
    (parts.iter().map(|rows| data.select_rows(rows)).collect(), data.select_rows(&order))
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * x.abs().max(1.0), "{what} row {i}: {x} vs {y}");
    }
}

fn same(whole: &Detection, sharded: &Detection, tol: f64, what: &str) {
    close(whole.scores(), sharded.scores(), tol, &format!("{what} scores"));
    close(whole.p_values(), sharded.p_values(), tol, &format!("{what} p-values"));
    assert_eq!(whole.flagged(), sharded.flagged(), "{what} flags");
}

fn check<F: FittedDetector>(id: &str, whole: &F, sharded: &F, all: &Dataset, tol: f64) {
    same(whole.training(), sharded.training(), tol, &format!("{id} training"));
    let new = digits().select_rows(&(0..300).map(|i| i * 5).collect::<Vec<_>>());
    let (a, b) = (whole.detect(&new).expect("detect"), sharded.detect(&new).expect("detect"));
    same(&a, &b, tol, &format!("{id} new"));
    assert_eq!(whole.training().scores().len(), all.n_samples());
}

#[test]
fn ecod_fitted_on_shards_is_the_fit_on_all_rows_bit_for_bit() {
    let (parts, all) = shards(&digits());
    for per_class in [false, true] {
        let params = EcodParams::default().per_class(per_class).check().unwrap();
        let whole = poisonguard::Detector::fit(&params, &all).unwrap();
        let sharded = params.fit_shards(&parts).unwrap();
        check("ecod", &whole, &sharded, &all, 0.0);
    }
}

#[test]
fn pca_fitted_on_shards_is_the_fit_on_all_rows_up_to_rounding() {
    let (parts, all) = shards(&digits());
    for per_class in [false, true] {
        let params = PcaParams::default().per_class(per_class).check().unwrap();
        let whole = poisonguard::Detector::fit(&params, &all).unwrap();
        let sharded = params.fit_shards(&parts).unwrap();
        check("pca", &whole, &sharded, &all, 1e-9);
    }
}

#[test]
fn spectral_signature_fitted_on_shards_is_the_fit_on_all_rows_up_to_rounding() {
    let (parts, all) = shards(&digits());
    let params = poisonguard::SpectralSignatureParams::default().check().unwrap();
    let whole = poisonguard::Detector::fit(&params, &all).unwrap();
    let sharded = params.fit_shards(&parts).unwrap();
    check("spectral_signature", &whole, &sharded, &all, 1e-9);
    for (a, b) in whole.class_findings().iter().zip(sharded.class_findings()) {
        assert!((a.score() - b.score()).abs() <= 1e-9 * a.score().abs().max(1.0), "{a:?} {b:?}");
    }
    assert!(params.fit_shards(&[Dataset::new(parts[0].features().to_owned()).unwrap()]).is_err());
}

#[test]
fn a_shard_may_hold_one_class() {
    let data = digits();
    let labels = data.labels().expect("labelled");
    let zero = poisonguard::LabelValue::Int(0);
    let (zeros, rest): (Vec<usize>, Vec<usize>) =
        (0..data.n_samples()).partition(|&i| labels.value_of_row(i) == &zero);
    let parts = [data.select_rows(&zeros), data.select_rows(&rest)];
    let all = data.select_rows(&[zeros, rest].concat());
    let ecod = EcodParams::default().per_class(true).check().unwrap();
    let whole = poisonguard::Detector::fit(&ecod, &all).unwrap();
    check("ecod", &whole, &ecod.fit_shards(&parts).unwrap(), &all, 0.0);
    let signature = poisonguard::SpectralSignatureParams::default().check().unwrap();
    let whole = poisonguard::Detector::fit(&signature, &all).unwrap();
    check("spectral_signature", &whole, &signature.fit_shards(&parts).unwrap(), &all, 1e-9);
    // one class in all shards together is the single-class error
    let only = [parts[0].clone()];
    assert!(signature.fit_shards(&only).unwrap_err().to_string().contains("class"));
}

#[test]
fn shards_that_do_not_fit_together_are_errors() {
    let (parts, _) = shards(&digits());
    let params = PcaParams::default().check().unwrap();
    assert!(params.fit_shards(&[]).is_err());
    let narrow = Dataset::new(ndarray::Array2::<f32>::zeros((10, 3))).unwrap();
    let err = params.fit_shards(&[parts[0].clone(), narrow]).unwrap_err();
    assert!(err.to_string().contains("features"), "{err}");
    // per class, every shard needs labels
    let unlabelled = Dataset::new(parts[0].features().to_owned()).unwrap();
    let per_class = PcaParams::default().per_class(true).check().unwrap();
    assert!(per_class.fit_shards(&[parts[1].clone(), unlabelled]).is_err());
}
