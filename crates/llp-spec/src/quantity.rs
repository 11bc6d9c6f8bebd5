//! Kubernetes resource quantities (`500m`, `4`, `16Gi`, `1.5G`) as numbers, to compare volume
//! sizes. (The simulator keeps its own copy: it models Kubernetes and depends on no product crate.)

/// The value of a quantity in base units (cores, bytes, counts); `None` if unreadable.
pub fn parse(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities_in_base_units() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("4"), Some(4.0));
        assert_eq!(parse("16Gi"), Some(16.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("x"), None);
    }
}
