//! Temporary probe (not committed).
use poisonguard::{DetectorOptions, metrics::roc_auc};
use poisonguard_attacks::{Attack, mlp_embeddings};
use poisonguard_io::{LoadOptions, load};

fn main() {
    let path = format!("{}/datasets/digits/digits.parquet", env!("CARGO_MANIFEST_DIR"));
    let opts = LoadOptions { label: Some("label".into()), ..LoadOptions::default() };
    let clean = load(&path, &opts).unwrap().into_parts().0;
    for spec in std::env::args().skip(1) {
        let attack = Attack::parse(&spec).unwrap();
        for mlp in [false, true] {
            let mut sums: Vec<(String, f64)> = Vec::new();
            for seed in 0..3u64 {
                let p = attack.apply(&clean, seed).unwrap();
                let data = if mlp { mlp_embeddings(&p.data, seed).unwrap() } else { p.data };
                for (k, r) in poisonguard::REGISTRY.iter().enumerate() {
                    let fitted = r.build(&DetectorOptions::default()).fit_boxed(&data).unwrap();
                    let auc = roc_auc(fitted.training().scores(), &p.truth).unwrap();
                    if seed == 0 { sums.push((r.id().to_string(), 0.0)); }
                    sums[k].1 += auc / 3.0;
                }
            }
            let line: Vec<String> = sums.iter().map(|(n, a)| format!("{n} {a:.3}")).collect();
            println!("{spec} {}: {}", if mlp { "mlp" } else { "raw" }, line.join(", "));
        }
    }
}
