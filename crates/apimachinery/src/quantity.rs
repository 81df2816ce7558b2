//! Resource quantities (`500m`, `1.5`, `128Mi`, `1G`, `1e3`) as numbers.

/// The quantity's value in base units (cores, bytes), or None if it is not a quantity.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, scale) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * scale);
        }
    }
    text.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantities() {
        assert_eq!(super::parse("250m"), Some(0.25));
        assert_eq!(super::parse("1.5"), Some(1.5));
        assert_eq!(super::parse("64Mi"), Some(67_108_864.0));
        assert_eq!(super::parse("1G"), Some(1e9));
        assert_eq!(super::parse("129e6"), Some(129e6));
        assert_eq!(super::parse("lots"), None);
    }
}
