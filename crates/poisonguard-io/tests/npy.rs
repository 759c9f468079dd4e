//! NumPy `.npy` inputs: the fixtures in `tests/npy/` were written by numpy 2.4 (`np.save`), the
//! same 6 x 3 values as `x.csv` in float16, float32 and big-endian float64.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use crate::common;

use std::path::PathBuf;

use poisonguard_core::LabelValue;
use poisonguard_io::{LoadOptions, load};

fn fixture(name: &str) -> PathBuf {
    common::fixture(&format!("npy/{name}"))
}

fn roles(meta: Option<&str>) -> LoadOptions {
    LoadOptions { meta: meta.map(fixture), ..common::roles() }
}

fn error(input: &str, opts: &LoadOptions) -> String {
    load(fixture(input), opts).unwrap_err().to_string()
}

#[test]
fn every_float_width_and_byte_order_reads_as_the_csv() {
    let csv = load(fixture("x.csv"), &roles(None)).unwrap();
    for input in ["x_f4.npy", "x_f2.npy", "x_f8_be.npy"] {
        let npy = load(fixture(input), &roles(Some("meta.csv"))).unwrap();
        common::same(&csv, &npy, input);
    }
    // without roles, a bare array is an unlabelled table
    let bare = load(fixture("x_f4.npy"), &LoadOptions::default()).unwrap();
    assert_eq!(bare.dataset().features(), csv.dataset().features());
    assert!(bare.dataset().labels().is_none());
}

#[test]
fn labels_can_come_from_a_one_dimensional_array() {
    let opts = LoadOptions {
        label: Some("label".into()),
        meta: Some(fixture("labels_i8.npy")),
        ..LoadOptions::default()
    };
    let ints = load(fixture("x_f4.npy"), &opts).unwrap();
    let csv = load(fixture("x.csv"), &roles(None)).unwrap();
    assert_eq!(ints.dataset().labels(), csv.dataset().labels());
    let opts = LoadOptions { meta: Some(fixture("labels_u.npy")), ..opts };
    let words = load(fixture("x_f4.npy"), &opts).unwrap();
    let labels = words.dataset().labels().unwrap();
    assert_eq!(labels.value_of_row(4), &LabelValue::Str("emu".into()));
    assert_eq!(labels.n_present_classes(), 3);
}

#[test]
fn bad_arrays_and_misplaced_options_are_clear_errors() {
    let none = LoadOptions::default();
    let cases: [(&str, &LoadOptions, &str); 7] = [
        ("x_fortran.npy", &none, "Fortran (column-major) order"),
        ("x_1d.npy", &none, "a 1-D array holds no feature matrix"),
        ("x_int.npy", &none, "must hold floats"),
        ("x_nan.npy", &none, "row 4"),
        ("x_truncated.npy", &none, "truncated"),
        (
            "x.csv",
            &LoadOptions { meta: Some(fixture("meta.csv")), ..none.clone() },
            "a meta file goes with a .npy",
        ),
        ("no_such.npy", &none, "not found"),
    ];
    for (input, opts, fragment) in cases {
        let e = error(input, opts);
        assert!(e.contains(fragment), "{input}: {e}");
    }
    // NaN is named with its column
    let e = error("x_nan.npy", &none);
    assert!(e.contains("column \"#2\", row 4"), "{e}");
    let e = error("x_f4.npy", &roles(None));
    assert!(e.contains("--meta FILE"), "{e}");
    let e = error("x_f4.npy", &LoadOptions { meta: Some(fixture("meta.csv")), ..none.clone() });
    assert!(e.contains("name them"), "{e}");
    let opts = LoadOptions {
        label: Some("label".into()),
        meta: Some(fixture("labels_short.npy")),
        ..LoadOptions::default()
    };
    let e = error("x_f4.npy", &opts);
    assert!(e.contains("3 entries but the dataset has 6 rows"), "{e}");
    let e = error("x_f4.npy", &LoadOptions { exclude: vec!["#0".into()], ..none.clone() });
    assert!(e.contains("every column of a .npy array is a feature"), "{e}");
    let e = error("x_f4.npy", &roles(Some("labels_i8.npy")));
    assert!(e.contains("labels only"), "{e}");
}
