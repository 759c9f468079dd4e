//! Attack specs as text: [`Attack::parse`] and the `Display` that writes them back.

use std::fmt;

use poisonguard_core::LabelValue;

use crate::{Attack, Corner, Error, Patch};

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::BadNets { patch, target, eps, .. } => {
                write!(
                    f,
                    "badnets(target={target},eps={eps},size={},value={})",
                    patch.size, patch.value
                )
            }
            Attack::Blend { target, eps, alpha } => {
                write!(f, "blend(target={target},eps={eps},alpha={alpha})")
            }
            Attack::CleanLabel { target, eps, patch } => {
                write!(f, "clean-label(target={target},eps={eps},value={})", patch.value)
            }
            Attack::CleanLabelBlend { target, eps, alpha } => {
                write!(f, "clean-label-blend(target={target},eps={eps},alpha={alpha})")
            }
            Attack::Flip { rate } => write!(f, "flip({rate})"),
            Attack::TargetedFlip { from, to, rate } => {
                write!(f, "targeted-flip({from}->{to},rate={rate})")
            }
            Attack::Flood { copies, jitter } => write!(f, "flood(copies={copies},jitter={jitter})"),
            Attack::Source { sources, rate } => write!(f, "source(sources={sources},rate={rate})"),
            Attack::OffManifold { rate, scale } => {
                write!(f, "off-manifold(rate={rate},scale={scale})")
            }
        }
    }
}

fn label_of(text: &str) -> LabelValue {
    text.trim()
        .parse::<i64>()
        .map_or_else(|_| LabelValue::Str(text.trim().to_string()), LabelValue::Int)
}

/// `key=value` pairs of a spec's argument list (a bare value is stored under `""`).
fn pairs(args: &str) -> Vec<(String, String)> {
    args.split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (String::new(), a.trim().to_string()),
        })
        .collect()
}

impl Attack {
    /// Parses a spec such as `badnets:target=0,eps=0.1` (see the crate docs for every kind and
    /// its defaults: `side=8,size=2,value=16,corner=br`, `alpha=0.2`, `copies=30,jitter=0`,
    /// `sources=10,rate=0.4`, `rate=0.02,scale=3`).
    ///
    /// # Errors
    /// [`Error::Spec`] naming the spec and the problem.
    pub fn parse(spec: &str) -> Result<Attack, Error> {
        /// Largest side of a square image a patch attack accepts.
        const MAX_PATCH_SIDE: usize = 1 << 16;
        /// Largest number of copies or sources.
        const MAX_COUNT: usize = 1 << 20;
        let bad = |message: String| Error::Spec { spec: spec.to_string(), message };
        let (kind, args) = spec.split_once(':').unwrap_or((spec, ""));
        let args = pairs(args);
        let known: &[&str] = match kind.trim() {
            "badnets" => &["target", "eps", "side", "size", "value", "corner", "sources"],
            "blend" => &["target", "eps", "alpha"],
            "clean-label" => &["target", "eps", "side", "size", "value", "corner"],
            "clean-label-blend" => &["target", "eps", "alpha"],
            "flip" => &["", "rate"],
            "targeted-flip" => &["from", "to", "rate"],
            "flood" => &["copies", "jitter"],
            "source" => &["sources", "rate"],
            "off-manifold" => &["rate", "scale"],
            other => {
                return Err(bad(format!(
                    "unknown attack {other:?}; known: badnets, blend, clean-label, \
                     clean-label-blend, flip, targeted-flip, flood, source, off-manifold"
                )));
            }
        };
        if let Some((k, _)) = args.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(bad(format!("unknown argument {k:?}; allowed: {}", known.join(", "))));
        }
        let get = |k: &str| args.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        // every number is finite and within f32's range (features are f32)
        let num = |k: &str, default: Option<f64>| -> Result<f64, Error> {
            let v = match get(k) {
                Some(v) => v.parse::<f64>().map_err(|_| bad(format!("{k}={v} is not a number")))?,
                None => default.ok_or_else(|| bad(format!("{k}= is required")))?,
            };
            if v.is_finite() && v.abs() <= f64::from(f32::MAX) {
                Ok(v)
            } else {
                Err(bad(format!("{k}={v} must be a finite number")))
            }
        };
        // counts are whole numbers in a stated range, so nothing allocates without bound
        let count = |k: &str, default: f64, min: usize, max: usize| -> Result<usize, Error> {
            let v = num(k, Some(default))?;
            if v.fract() == 0.0 && v >= min as f64 && v <= max as f64 {
                Ok(v as usize)
            } else {
                Err(bad(format!("{k}={v} must be a whole number in [{min}, {max}]")))
            }
        };
        let share = |k: &str, v: f64| -> Result<f64, Error> {
            if v > 0.0 && v < 1.0 { Ok(v) } else { Err(bad(format!("{k}={v} must lie in (0, 1)"))) }
        };
        let target =
            || get("target").map(label_of).ok_or_else(|| bad("target= is required".into()));
        let patch = || -> Result<Patch, Error> {
            let side = count("side", 8.0, 1, MAX_PATCH_SIDE)?;
            let size = count("size", 2.0, 1, MAX_PATCH_SIDE)?;
            if size == 0 || size > side {
                return Err(bad(format!("patch size {size} must lie in [1, side = {side}]")));
            }
            let corner = match get("corner").unwrap_or("br") {
                "tl" => Corner::TopLeft,
                "tr" => Corner::TopRight,
                "bl" => Corner::BottomLeft,
                "br" => Corner::BottomRight,
                c => return Err(bad(format!("corner={c}: use tl, tr, bl or br"))),
            };
            Ok(Patch { side, size, value: num("value", Some(16.0))? as f32, corner })
        };
        Ok(match kind.trim() {
            "badnets" => Attack::BadNets {
                patch: patch()?,
                target: target()?,
                eps: share("eps", num("eps", Some(0.1))?)?,
                sources: get("sources")
                    .map_or_else(Vec::new, |s| s.split('|').map(label_of).collect()),
            },
            "blend" | "clean-label-blend" => {
                let alpha = num("alpha", Some(0.2))?;
                if !(alpha > 0.0 && alpha <= 1.0) {
                    return Err(bad(format!("alpha={alpha} must lie in (0, 1]")));
                }
                let (target, eps) = (target()?, share("eps", num("eps", Some(0.1))?)?);
                let alpha = alpha as f32;
                if kind.trim() == "blend" {
                    Attack::Blend { target, eps, alpha }
                } else {
                    Attack::CleanLabelBlend { target, eps, alpha }
                }
            }
            "clean-label" => Attack::CleanLabel {
                patch: patch()?,
                target: target()?,
                eps: share("eps", num("eps", Some(0.1))?)?,
            },
            "flip" => {
                let rate = match get("") {
                    Some(v) => v.parse::<f64>().map_err(|_| bad(format!("{v} is not a number")))?,
                    None => num("rate", None)?,
                };
                Attack::Flip { rate: share("rate", rate)? }
            }
            "targeted-flip" => Attack::TargetedFlip {
                from: get("from").map(label_of).ok_or_else(|| bad("from= is required".into()))?,
                to: get("to").map(label_of).ok_or_else(|| bad("to= is required".into()))?,
                rate: share("rate", num("rate", None)?)?,
            },
            "flood" => {
                let copies = count("copies", 30.0, 1, MAX_COUNT)?;
                let jitter = num("jitter", Some(0.0))?;
                if jitter < 0.0 {
                    return Err(bad(format!("jitter={jitter} must be >= 0")));
                }
                Attack::Flood { copies, jitter: jitter as f32 }
            }
            "source" => {
                let sources = count("sources", 10.0, 2, MAX_COUNT)?;
                Attack::Source { sources, rate: share("rate", num("rate", Some(0.4))?)? }
            }
            _ => {
                let scale = num("scale", Some(3.0))?;
                if scale < 0.0 {
                    return Err(bad(format!("scale={scale} must be >= 0")));
                }
                Attack::OffManifold {
                    rate: share("rate", num("rate", Some(0.02))?)?,
                    scale: scale as f32,
                }
            }
        })
    }
}
