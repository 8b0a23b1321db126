//! Security descriptors in their text form (SDDL, as Windows'
//! `ConvertSecurityDescriptorToStringSecurityDescriptorW` writes them), and
//! the rule that says whether the service may trust a folder or file with one.
//! Pure code, so the rule is tested on every platform; `acl` reads the
//! descriptors on Windows and applies the rule.

/// SYSTEM, whom the service runs as.
pub const SYSTEM: &str = "SY";
/// BUILTIN\Administrators.
pub const ADMINISTRATORS: &str = "BA";

/// SIDs that SDDL writes as two-letter aliases, for the ones the rule names.
const ALIASES: [(&str, &str); 6] = [
    ("S-1-5-18", SYSTEM),
    ("S-1-5-32-544", ADMINISTRATORS),
    ("S-1-3-4", "OW"),
    ("S-1-3-0", "CO"),
    ("S-1-3-1", "CG"),
    ("S-1-1-0", "WD"),
];

/// A SID as SDDL's alias when it has one of [`ALIASES`], else as given.
pub fn canonical_sid(sid: &str) -> String {
    let upper = sid.to_ascii_uppercase();
    ALIASES.iter().find(|(long, _)| *long == upper).map_or(upper, |(_, alias)| alias.to_string())
}

/// One access-control entry: `(type;flags;rights;object;inherit object;sid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// `A` allow, `D` deny, `OA`, `OD`, `XA`, ...
    pub kind: String,
    /// Inheritance flags (`OICI`, `ID`, `IO`, ...).
    pub flags: String,
    /// Rights (`FA`, `0x1200a9`, ...).
    pub rights: String,
    /// Who it is for, canonical (see [`canonical_sid`]).
    pub sid: String,
}

impl Ace {
    /// Whether it takes access away rather than granting it.
    fn denies(&self) -> bool {
        matches!(self.kind.as_str(), "D" | "OD" | "XD")
    }
}

/// The parts of a descriptor the rule reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Owner, canonical; `None` when the text has no `O:` part.
    pub owner: Option<String>,
    /// Access list; `None` when it is absent or null (`D:NO_ACCESS_CONTROL`):
    /// then everyone may do everything.
    pub dacl: Option<Vec<Ace>>,
    /// The access list is protected (`D:P`): nothing is inherited from the parent.
    pub protected: bool,
}

/// SDDL text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable security descriptor {text:?}: {why}")]
pub struct SddlError {
    /// The text.
    pub text: String,
    /// What is wrong.
    pub why: &'static str,
}

impl Descriptor {
    /// Parses the `O:`, `G:` and `D:` parts of `text` (a `S:` part is skipped).
    pub fn parse(text: &str) -> Result<Self, SddlError> {
        let bad = |why| SddlError { text: text.to_string(), why };
        let mut d = Descriptor { owner: None, dacl: None, protected: false };
        for (tag, body) in sections(text).map_err(bad)? {
            match tag {
                'O' => d.owner = Some(canonical_sid(body)),
                'D' => {
                    let head = body.split('(').next().unwrap_or("");
                    d.protected = head.contains('P') && !head.contains("NO_ACCESS_CONTROL");
                    if head.contains("NO_ACCESS_CONTROL") {
                        continue;
                    }
                    let mut aces = Vec::new();
                    for ace in body[head.len()..].split_terminator(')') {
                        let ace = ace.strip_prefix('(').ok_or_else(|| bad("an entry does not start with ("))?;
                        let f: Vec<&str> = ace.split(';').collect();
                        if f.len() < 6 {
                            return Err(bad("an entry has fewer than 6 fields"));
                        }
                        aces.push(Ace {
                            kind: f[0].to_string(),
                            flags: f[1].to_string(),
                            rights: f[2].to_string(),
                            sid: canonical_sid(f[5]),
                        });
                    }
                    d.dacl = Some(aces);
                }
                _ => {}
            }
        }
        Ok(d)
    }
}

/// Splits SDDL into its `X:` parts (outside parentheses).
fn sections(text: &str) -> Result<Vec<(char, &str)>, &'static str> {
    let b = text.as_bytes();
    let (mut depth, mut starts) = (0i32, Vec::new());
    for i in 0..b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            // No SID or alias holds a colon, so `X:` outside parentheses starts a part.
            b'O' | b'G' | b'D' | b'S' if depth == 0 && b.get(i + 1) == Some(&b':') => starts.push(i),
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced parentheses");
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses");
    }
    if starts.first() != Some(&0) {
        return Err("it does not start with O:, G:, D: or S:");
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(text.len());
        out.push((b[s] as char, &text[s + 2..end]));
    }
    Ok(out)
}

/// Why the service does not trust a folder or file it finds in its config folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    /// Owned by someone who is not SYSTEM, Administrators or the service itself.
    #[error("it belongs to {0}, not to SYSTEM or Administrators")]
    Owner(String),
    /// Its access list lets someone else in.
    #[error("its access list lets {0} in")]
    Grants(String),
    /// No access list: everyone may use it.
    #[error("it has no access list, so everyone may use it")]
    NoAccessList,
    /// A symbolic link or junction (it could lead anywhere).
    #[error("it is a link to another place")]
    Link,
    /// A file with more than one name (a hard link to a file elsewhere).
    #[error("it is a file with {0} names (hard links)")]
    HardLinks(u32),
    /// Not the kind of entry the service makes (a folder in its config folder).
    #[error("the service makes no such entry")]
    Unexpected,
}

/// Whether the service may trust an entry whose descriptor is `d`: its owner
/// is SYSTEM, Administrators or `me` (the service's own user, as a SID), and
/// its access list grants nobody else anything (deny entries do not matter,
/// and "owner rights" and "creator owner" stand for trusted owners here).
/// With `check_grants` false only the owner counts (log files: nothing
/// secret is in them, but the service must not write to someone else's file).
pub fn judge(d: &Descriptor, me: &str, check_grants: bool) -> Result<(), Distrust> {
    let me = canonical_sid(me);
    let trusted = |sid: &str| sid == SYSTEM || sid == ADMINISTRATORS || sid == me;
    match &d.owner {
        Some(o) if trusted(o) => {}
        Some(o) => return Err(Distrust::Owner(o.clone())),
        None => return Err(Distrust::Owner("nobody".into())),
    }
    if !check_grants {
        return Ok(());
    }
    let aces = d.dacl.as_ref().ok_or(Distrust::NoAccessList)?;
    match aces.iter().find(|a| !a.denies() && !trusted(&a.sid) && !matches!(a.sid.as_str(), "OW" | "CO" | "CG")) {
        Some(a) => Err(Distrust::Grants(a.sid.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINE_USER: &str = "S-1-5-21-0-0-0-1000";

    fn judged(sddl: &str, me: &str) -> Result<(), Distrust> {
        judge(&Descriptor::parse(sddl).unwrap(), me, true)
    }

    #[test]
    fn the_descriptors_the_service_sets_are_trusted_and_protected() {
        for sddl in [super::super::acl::CONFIG_DIR_SDDL, super::super::acl::CONFIG_FILE_SDDL] {
            let d = Descriptor::parse(sddl).unwrap();
            assert_eq!(d.owner.as_deref(), Some(ADMINISTRATORS), "{sddl}");
            assert!(d.protected, "{sddl}: nothing inherited from ProgramData");
            let sids: Vec<&str> = d.dacl.as_ref().unwrap().iter().map(|a| a.sid.as_str()).collect();
            assert_eq!(sids, [SYSTEM, ADMINISTRATORS], "{sddl}: SYSTEM and Administrators only, no owner entry");
            assert_eq!(judge(&d, "S-1-5-18", true), Ok(()));
        }
        let dir = Descriptor::parse(super::super::acl::CONFIG_DIR_SDDL).unwrap();
        assert!(dir.dacl.unwrap().iter().all(|a| a.flags == "OICI"), "files and folders in it inherit it");
    }

    #[test]
    fn a_folder_a_standard_user_made_in_programdata_is_not_trusted() {
        // What Windows shows for `mkdir C:\ProgramData\Mikaka\ThinServer` by a
        // standard user: the user owns it, and ProgramData's inherited entries
        // let Users read it and its creator do anything.
        let user = "S-1-5-21-1004336348-1177238915-682003330-1001";
        let made = format!("O:{user}G:{user}D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)(A;CIID;DCLCRPCR;;;BU)(A;OICIID;FA;;;{user})");
        assert_eq!(judged(&made, "S-1-5-18"), Err(Distrust::Owner(user.into())));
        // Even after an administrator took ownership, Users keep their inherited access.
        let taken = made.replacen(&format!("O:{user}"), "O:BA", 1);
        assert_eq!(judged(&taken, "S-1-5-18"), Err(Distrust::Grants("BU".into())));
    }

    #[test]
    fn the_previous_versions_folder_is_still_trusted() {
        // protect_dir of earlier versions: SYSTEM-made, owner entry kept.
        assert_eq!(judged("O:SYG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;OW)", "S-1-5-18"), Ok(()));
        assert_eq!(judged("O:S-1-5-18D:P(A;OICI;FA;;;S-1-5-18)(A;OICI;FA;;;S-1-5-32-544)", "S-1-5-18"), Ok(()));
    }

    #[test]
    fn deny_entries_do_not_count_but_any_grant_to_another_does() {
        assert_eq!(judged("O:BAD:P(D;OICI;FA;;;WD)(A;OICI;FA;;;SY)", "S-1-5-18"), Ok(()));
        assert_eq!(judged("O:BAD:P(A;OICI;FA;;;SY)(A;;0x100000;;;WD)", "S-1-5-18"), Err(Distrust::Grants("WD".into())));
        // An inherit-only grant reaches every file the service will make.
        assert_eq!(judged("O:BAD:P(A;OICIIO;GA;;;BU)", "S-1-5-18"), Err(Distrust::Grants("BU".into())));
        assert_eq!(judged("O:BAD:NO_ACCESS_CONTROL", "S-1-5-18"), Err(Distrust::NoAccessList));
        assert_eq!(judged("O:BA", "S-1-5-18"), Err(Distrust::NoAccessList));
        assert_eq!(judged("D:P(A;;FA;;;SY)", "S-1-5-18"), Err(Distrust::Owner("nobody".into())));
    }

    #[test]
    fn the_services_own_user_counts_as_trusted_and_only_it() {
        // Wine renders a 0750 folder of its user like this.
        let wine = format!("O:{WINE_USER}G:S-1-5-21-0-0-0-513D:(A;OICI;FA;;;SY)(A;OICI;FA;;;{WINE_USER})");
        assert_eq!(judged(&wine, WINE_USER), Ok(()));
        assert_eq!(judged(&wine, "S-1-5-18"), Err(Distrust::Owner(WINE_USER.into())));
        // ... and a 0755 one: everyone may read it.
        let open = format!("{wine}(A;OICI;0x1200a9;;;WD)");
        assert_eq!(judged(&open, WINE_USER), Err(Distrust::Grants("WD".into())));
        // A log file is judged by its owner only.
        assert_eq!(judge(&Descriptor::parse(&open).unwrap(), WINE_USER, false), Ok(()));
    }

    #[test]
    fn sids_compare_by_alias_and_case() {
        assert_eq!(canonical_sid("s-1-5-18"), "SY");
        assert_eq!(canonical_sid("S-1-5-32-544"), "BA");
        assert_eq!(canonical_sid("S-1-5-21-1-2-3-1000"), "S-1-5-21-1-2-3-1000");
        assert_eq!(judged("O:S-1-5-21-1-2-3-1000D:(A;;FA;;;s-1-5-21-1-2-3-1000)", "S-1-5-21-1-2-3-1000"), Ok(()));
    }

    #[test]
    fn malformed_text_is_an_error_not_a_verdict() {
        for bad in ["", "X:BA", "O:BAD:(A;;FA;;;SY", "O:BAD:(A;;FA)", "O:BAD:A;;FA;;;SY)"] {
            assert!(Descriptor::parse(bad).is_err(), "{bad:?}");
        }
    }
}
