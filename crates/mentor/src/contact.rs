//! Contact details parsed at the edge: email trimmed, lower-cased and checked; phone normalised to E.164;
//! names bounded. Each function returns the stored form or a message for the caller.

/// `  Ana@Example.COM ` → `ana@example.com`. Deliberately simple (no quoted local parts, no IP literals):
/// the aim is to catch typos, not to implement RFC 5322.
pub fn parse_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("must not be empty (send null to remove it)".into());
    }
    if email.len() > 254 {
        return Err("must be at most 254 characters".into());
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("is not an email address (missing @)".into());
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
    if !local_ok || !domain_ok {
        return Err("is not a valid email address".into());
    }
    Ok(email)
}

/// Normalises a phone number to E.164 (`+` and 8 to 15 digits). Spaces, dots, dashes and parentheses are
/// dropped; a leading `00` means `+`; a 10-digit number without a country code gets `default_country_code`.
pub fn parse_phone(raw: &str, default_country_code: Option<&str>) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("must not be empty (send null to remove it)".into());
    }
    if trimmed.len() > 40 {
        return Err("must be at most 40 characters".into());
    }
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(format!("contains '{c}': use digits, spaces, dashes, dots or parentheses")),
        }
    }
    let international = if plus {
        digits
    } else if let Some(stripped) = digits.strip_prefix("00") {
        stripped.to_owned()
    } else if digits.len() == 10 {
        match default_country_code {
            Some(cc) => format!("{cc}{digits}"),
            None => return Err("needs a country code, e.g. +44 20 7946 0958".into()),
        }
    } else {
        return Err("needs a country code, e.g. +44 20 7946 0958".into());
    };
    if !(8..=15).contains(&international.len()) || international.starts_with('0') {
        return Err("is not a valid international number (8 to 15 digits after +)".into());
    }
    Ok(format!("+{international}"))
}

/// Trimmed, 1 to 200 characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty (send null to remove it)".into());
    }
    if name.chars().count() > 200 {
        return Err("must be at most 200 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(parse_email("  Ana.Silva+tattoo@Example.COM ").as_deref(), Ok("ana.silva+tattoo@example.com"));
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@@example.com",
            "ana@example.c",
            ".a@example.com",
            "ana@-x.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(parse_phone("(555) 123-4567", Some("1")).as_deref(), Ok("+15551234567"));
        assert_eq!(parse_phone("+44 20 7946 0958", Some("1")).as_deref(), Ok("+442079460958"));
        assert_eq!(parse_phone("0044 20 7946 0958", None).as_deref(), Ok("+442079460958"));
        assert!(parse_phone("555 123 4567", None).is_err(), "no default country code");
        assert!(parse_phone("+1 555 ABC", Some("1")).is_err());
        assert!(parse_phone("+123", Some("1")).is_err());
        assert!(parse_phone("+1234567890123456", Some("1")).is_err());
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(parse_name("  Ana  ").as_deref(), Ok("Ana"));
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(201)).is_err());
        assert!(parse_name("a\u{0007}b").is_err());
    }
}
