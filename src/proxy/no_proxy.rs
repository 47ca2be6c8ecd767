//! `no_proxy` matching, as curl does it: comma-separated entries, `*` for
//! every host, a name covering itself and its subdomains (a leading dot
//! changes nothing), an IP address matching only itself. Ports in entries
//! are ignored.

use std::net::IpAddr;

/// True when `host` (a name or an IP address, IPv6 without brackets) is
/// listed in `list`.
pub(super) fn matches(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| entry_matches(entry, &host))
}

fn entry_matches(entry: &str, host: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let entry = entry.to_ascii_lowercase();
    if let Ok(ip) = entry
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return host.parse::<IpAddr>().is_ok_and(|h| h == ip);
    }
    let name = strip_port(&entry)
        .trim_start_matches('.')
        .trim_end_matches('.');
    if name.is_empty() {
        return false;
    }
    host == name
        || host
            .strip_suffix(name)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn strip_port(entry: &str) -> &str {
    match entry.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => entry,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn names_cover_their_subdomains_only() {
        let list = "localhost, .corp.example,hub.example:443";
        assert!(matches(list, "localhost"));
        assert!(matches(list, "a.corp.example"));
        assert!(matches(list, "corp.example"));
        assert!(matches(list, "HUB.example."));
        assert!(matches(list, "x.hub.example"));
        assert!(!matches(list, "nothub.example"));
        assert!(!matches(list, "example"));
        assert!(!matches("", "localhost"));
    }

    #[test]
    fn ips_match_exactly_and_star_matches_all() {
        assert!(matches("127.0.0.1,::1", "127.0.0.1"));
        assert!(matches("127.0.0.1,[::1]", "::1"));
        assert!(!matches("127.0.0.1", "127.0.0.2"));
        assert!(matches("*", "anything"));
    }
}
