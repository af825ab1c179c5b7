//! Field values (§1.4 to §1.7): what each type accepts, and how multi-valued fields split.

use crate::header::ValueType;

/// The largest property value or label the loader takes (§1.13).
pub const MAX_VALUE_BYTES: usize = 55 * 1_000_000;

/// Why a value does not fit its column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueProblem {
    /// Neptune rejects the record (`datatypeMismatchErrors`).
    Mismatch(String),
    /// Neptune loads it, but not as written (a non-`true` Bool loads as false, ...).
    Silent(String),
}

/// Splits a multi-valued field at every `;` not escaped as `\;`, unescaping `\;`.
pub fn split_values(field: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&';') => {
                chars.next();
                current.push(';');
            }
            ';' => values.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    values.push(current);
    values
}

/// Whether a field holds a `;` that the loader might take as a value separator.
pub fn has_unescaped_semicolon(field: &str) -> bool {
    let bytes = field.as_bytes();
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b';' && (i == 0 || bytes[i - 1] != b'\\'))
}

fn integer(value: &str, min: i64, max: i64, ty: &str) -> Result<(), ValueProblem> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueProblem::Mismatch(format!(
            "`{value}` is not a whole number ({ty})"
        )));
    }
    match value.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(ValueProblem::Mismatch(format!(
            "`{value}` is out of range for {ty} ({min} to {max})"
        ))),
    }
}

fn decimal(value: &str, ty: &str) -> Result<(), ValueProblem> {
    if matches!(value, "NaN" | "Infinity" | "+Infinity" | "-Infinity") {
        return Ok(());
    }
    // Decimal or scientific notation: [+-] digits [. digits] [e [+-] digits]
    let b = value.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        mantissa_digits += i - frac;
    }
    if mantissa_digits > 0 && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp {
            mantissa_digits = 0;
        }
    }
    if mantissa_digits == 0 || i != b.len() {
        return Err(ValueProblem::Mismatch(format!(
            "`{value}` is not a {ty} (decimal or scientific notation, NaN, Infinity or -Infinity)"
        )));
    }
    Ok(())
}

fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit())
        .then(|| u32::from(x - b'0') * 10 + u32::from(y - b'0'))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The documented date forms: `yyyy-MM-dd`, `yyyy-MM-ddTHH:mm`, `yyyy-MM-ddTHH:mm:ss` and
/// `yyyy-MM-ddTHH:mm:ssZ`, naming a real day and time.
pub fn is_valid_date(value: &str) -> bool {
    let b = value.as_bytes();
    if !matches!(b.len(), 10 | 16 | 19 | 20) || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let year = match (two_digits(b, 0), two_digits(b, 2)) {
        (Some(hi), Some(lo)) => hi * 100 + lo,
        _ => return false,
    };
    let (Some(month), Some(day)) = (two_digits(b, 5), two_digits(b, 8)) else {
        return false;
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    if b[10] != b'T' || b[13] != b':' {
        return false;
    }
    let (Some(hour), Some(minute)) = (two_digits(b, 11), two_digits(b, 14)) else {
        return false;
    };
    if hour > 23 || minute > 59 {
        return false;
    }
    if b.len() == 16 {
        return true;
    }
    let Some(second) = two_digits(b, 17) else {
        return false;
    };
    b[16] == b':' && second <= 59 && (b.len() == 19 || b[19] == b'Z')
}

/// Checks one (non-empty, already split) value against its type.
pub fn check_value(ty: ValueType, value: &str) -> Result<(), ValueProblem> {
    if value.contains('\0') {
        return Err(ValueProblem::Mismatch(
            "the value holds a NUL character".to_owned(),
        ));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(ValueProblem::Mismatch(format!(
            "the value is {} bytes; the loader takes at most 55 MB",
            value.len()
        )));
    }
    match ty {
        ValueType::String => Ok(()),
        ValueType::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err(ValueProblem::Silent(format!(
                "Bool value `{value}` is neither `true` nor `false`; the loader stores it as false"
            ))),
        },
        ValueType::Byte => integer(value, i64::from(i8::MIN), i64::from(i8::MAX), "Byte"),
        ValueType::Short => integer(value, i64::from(i16::MIN), i64::from(i16::MAX), "Short"),
        ValueType::Int => integer(value, i64::from(i32::MIN), i64::from(i32::MAX), "Int"),
        ValueType::Long => integer(value, i64::MIN, i64::MAX, "Long"),
        ValueType::Float => decimal(value, "Float"),
        ValueType::Double => decimal(value, "Double"),
        ValueType::Date => {
            if is_valid_date(value) {
                Ok(())
            } else {
                Err(ValueProblem::Mismatch(format!(
                    "`{value}` is not a date in a documented form (yyyy-MM-dd, yyyy-MM-ddTHH:mm, \
                     yyyy-MM-ddTHH:mm:ss or yyyy-MM-ddTHH:mm:ssZ)"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_range_checked_per_width() {
        assert!(check_value(ValueType::Byte, "127").is_ok());
        assert!(check_value(ValueType::Byte, "128").is_err());
        assert!(check_value(ValueType::Short, "-32768").is_ok());
        assert!(check_value(ValueType::Int, "2147483648").is_err());
        assert!(check_value(ValueType::Long, "9223372036854775807").is_ok());
        assert!(check_value(ValueType::Long, "9223372036854775808").is_err());
        assert!(check_value(ValueType::Int, "12a").is_err());
        assert!(check_value(ValueType::Int, "1.0").is_err());
        assert!(check_value(ValueType::Int, "+7").is_ok());
    }

    #[test]
    fn floats_take_decimal_scientific_and_the_named_specials() {
        for ok in [
            "0.4",
            "-1",
            "1e10",
            "2.5E-3",
            ".5",
            "5.",
            "NaN",
            "Infinity",
            "+Infinity",
            "-Infinity",
        ] {
            assert!(check_value(ValueType::Double, ok).is_ok(), "{ok}");
        }
        for bad in ["INF", "inf", "nan", "1e", "e5", "1.2.3", "", "0x10"] {
            assert!(check_value(ValueType::Float, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_take_the_documented_forms_of_real_days() {
        for ok in [
            "2024-02-29",
            "2021-08-12T10:40",
            "2021-08-12T10:40:17",
            "2021-08-12T10:40:17Z",
        ] {
            assert!(is_valid_date(ok), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "2021-13-01",
            "2021-08-12 10:40:17",
            "2021-08-12T10:40:17.5Z",
            "2021-08-12T10:40:17+02:00",
            "2021-08-12T24:00",
            "12/08/2021",
        ] {
            assert!(!is_valid_date(bad), "{bad}");
        }
    }

    #[test]
    fn bools_other_than_true_or_false_load_silently_as_false() {
        assert!(check_value(ValueType::Bool, "true").is_ok());
        assert!(matches!(
            check_value(ValueType::Bool, "TRUE"),
            Err(ValueProblem::Silent(_))
        ));
        assert!(matches!(
            check_value(ValueType::String, "a\0b"),
            Err(ValueProblem::Mismatch(_))
        ));
    }

    #[test]
    fn multi_values_split_on_unescaped_semicolons() {
        assert_eq!(split_values("a;b\\;c;d"), ["a", "b;c", "d"]);
        assert_eq!(split_values("one"), ["one"]);
        assert!(has_unescaped_semicolon("a;b"));
        assert!(!has_unescaped_semicolon("a\\;b"));
    }
}
