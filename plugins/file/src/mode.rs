//! The `mode` param: octal (`"0644"`, `"644"`) or symbolic (`"u=rw,go=r"`, `"a+X"`)
//! permissions, and the permission bits they ask for on a given entry.
//!
//! Octal modes follow Puppet on directories: the search (`x`) bit is added wherever the
//! read bit is set, so `"0644"` gives files `0644` and directories `0755`. Symbolic modes
//! follow chmod(1) and are applied to the entry's current bits (for a new entry: the
//! source's bits when it is a copy, else `0644` for a file and `0755` for a directory);
//! an empty "who" means `a`, and the umask is ignored.

use homeostat_sdk::{Error, Result};

/// All permission bits, including setuid, setgid and sticky.
pub const MASK: u32 = 0o7777;

/// A parsed `mode` param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Absolute bits, e.g. `0o644`.
    Octal(u32),
    /// chmod-style clauses, applied in order to the current bits.
    Symbolic(Vec<Clause>),
}

/// One comma-separated clause of a symbolic mode: `who` then one or more actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The bits the clause may touch (from `u`, `g`, `o`, `a`).
    who: u32,
    actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Action {
    op: Op,
    perm: Perm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perm {
    /// Letters among `rwxXst`.
    Letters {
        bits: u32,
        /// `X`: execute only for directories or entries already executable by someone.
        cond_x: bool,
    },
    /// Copy the current bits of a class: `g=u`. The shift selects the class.
    Copy(u32),
}

const WHO_U: u32 = 0o4700;
const WHO_G: u32 = 0o2070;
const WHO_O: u32 = 0o1007;

impl Mode {
    /// Parse the `mode` param, with an error naming the param that a user can act on.
    pub fn parse(text: &str) -> Result<Mode> {
        let s = text.trim();
        if s.is_empty() {
            return Err(invalid(text, "it is empty"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return parse_octal(text, s);
        }
        // `0o644` is how YAML 1.2 writes octal; accept it when quoted.
        if let Some(rest) = s.strip_prefix("0o")
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
        {
            return parse_octal(text, rest);
        }
        s.split(',')
            .map(|c| parse_clause(text, c))
            .collect::<Result<Vec<_>>>()
            .map(Mode::Symbolic)
    }

    /// The bits this mode asks for on an entry whose bits are `current` (`None` when it
    /// is about to be created).
    pub fn target(&self, current: Option<u32>, is_dir: bool) -> u32 {
        match self {
            Mode::Octal(m) if is_dir => m | ((m & 0o444) >> 2),
            Mode::Octal(m) => *m,
            Mode::Symbolic(clauses) => {
                let default = if is_dir { 0o755 } else { 0o644 };
                let mut m = current.unwrap_or(default) & MASK;
                for c in clauses {
                    for a in &c.actions {
                        m = a.apply(m, c.who, is_dir);
                    }
                }
                m
            }
        }
    }
}

impl Action {
    fn apply(&self, m: u32, who: u32, is_dir: bool) -> u32 {
        let bits = match self.perm {
            Perm::Letters { bits, cond_x } => {
                let x = if cond_x && (is_dir || m & 0o111 != 0) {
                    0o111
                } else {
                    0
                };
                (bits | x) & who
            }
            Perm::Copy(shift) => {
                let class = (m >> shift) & 0o7;
                (class | class << 3 | class << 6) & who & 0o777
            }
        };
        match self.op {
            Op::Add => m | bits,
            Op::Remove => m & !bits,
            Op::Set => (m & !who) | bits,
        }
    }
}

fn parse_octal(text: &str, digits: &str) -> Result<Mode> {
    if digits.bytes().any(|b| b == b'8' || b == b'9') {
        return Err(invalid(text, "8 and 9 are not octal digits"));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= MASK => Ok(Mode::Octal(m)),
        _ => Err(invalid(text, "it is larger than 7777, the highest mode")),
    }
}

fn parse_clause(text: &str, clause: &str) -> Result<Clause> {
    let mut chars = clause.chars().peekable();
    let mut who = 0;
    while let Some(&c) = chars.peek() {
        who |= match c {
            'u' => WHO_U,
            'g' => WHO_G,
            'o' => WHO_O,
            'a' => MASK,
            _ => break,
        };
        chars.next();
    }
    if who == 0 {
        who = MASK;
    }
    let mut actions = Vec::new();
    while let Some(c) = chars.next() {
        let op = match c {
            '+' => Op::Add,
            '-' => Op::Remove,
            '=' => Op::Set,
            _ => {
                let why =
                    format!("`{c}` is unexpected in `{clause}`; expected one of `+`, `-`, `=`");
                return Err(invalid(text, &why));
            }
        };
        let perm = match chars.peek() {
            Some(&c @ ('u' | 'g' | 'o')) => {
                chars.next();
                Perm::Copy(match c {
                    'u' => 6,
                    'g' => 3,
                    _ => 0,
                })
            }
            _ => {
                let (mut bits, mut cond_x) = (0, false);
                while let Some(&c) = chars.peek() {
                    bits |= match c {
                        'r' => 0o444,
                        'w' => 0o222,
                        'x' => 0o111,
                        's' => 0o6000,
                        't' => 0o1000,
                        'X' => {
                            cond_x = true;
                            0
                        }
                        '+' | '-' | '=' => break,
                        _ => {
                            let why = format!("`{c}` is not a permission (use r, w, x, X, s, t)");
                            return Err(invalid(text, &why));
                        }
                    };
                    chars.next();
                }
                Perm::Letters { bits, cond_x }
            }
        };
        actions.push(Action { op, perm });
    }
    if actions.is_empty() {
        let why = format!("`{clause}` has no `+`, `-` or `=`");
        return Err(invalid(text, &why));
    }
    Ok(Clause { who, actions })
}

fn invalid(text: &str, why: &str) -> Error {
    Error::param(
        "mode",
        format!(
            "`{text}` is not a valid mode: {why}. Write it in octal as a quoted string, \
             e.g. \"0644\", or symbolically, e.g. \"u=rw,go=r\""
        ),
    )
}

/// `0o644` → `0644`, as a user writes it.
pub fn show(m: u32) -> String {
    format!("{m:04o}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn octal(s: &str) -> u32 {
        match Mode::parse(s).unwrap() {
            Mode::Octal(m) => m,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn sym(s: &str, current: u32, is_dir: bool) -> u32 {
        Mode::parse(s).unwrap().target(Some(current), is_dir)
    }

    #[test]
    fn octal_forms() {
        assert_eq!(octal("0644"), 0o644);
        assert_eq!(octal("644"), 0o644);
        assert_eq!(octal("0o755"), 0o755);
        assert_eq!(octal("4755"), 0o4755);
        assert_eq!(octal("7777"), 0o7777);
        assert_eq!(octal("00600"), 0o600);
        assert_eq!(octal("0"), 0);
    }

    #[test]
    fn invalid_modes_name_the_param() {
        for bad in [
            "9999", "0648", "17777", "", "rw", "u=q", "u+rw,", "z=r", "u=rw;",
        ] {
            let e = Mode::parse(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("mode"), "{bad}");
            assert!(
                e.message.contains("not a valid mode"),
                "{bad}: {}",
                e.message
            );
        }
        let e = Mode::parse("9999").unwrap_err();
        assert!(
            e.message.contains("8 and 9 are not octal digits"),
            "{}",
            e.message
        );
        assert!(e.message.contains("\"0644\""), "{}", e.message);
        let e = Mode::parse("17777").unwrap_err();
        assert!(e.message.contains("larger than 7777"), "{}", e.message);
    }

    #[test]
    fn octal_directories_get_search_where_read() {
        let m = Mode::parse("0644").unwrap();
        assert_eq!(m.target(Some(0o600), false), 0o644);
        assert_eq!(m.target(None, true), 0o755);
        assert_eq!(Mode::parse("0640").unwrap().target(None, true), 0o750);
        assert_eq!(Mode::parse("0700").unwrap().target(None, true), 0o700);
        assert_eq!(Mode::parse("2660").unwrap().target(None, true), 0o2770);
    }

    #[test]
    fn symbolic() {
        assert_eq!(sym("u=rw,go=r", 0o777, false), 0o644);
        assert_eq!(sym("u=rwx,g=rx,o=", 0, true), 0o750);
        assert_eq!(sym("go-w", 0o666, false), 0o644);
        assert_eq!(sym("+x", 0o644, false), 0o755);
        assert_eq!(sym("a+X", 0o644, false), 0o644);
        assert_eq!(sym("a+X", 0o744, false), 0o755);
        assert_eq!(sym("a+X", 0o644, true), 0o755);
        assert_eq!(sym("g=u", 0o640, false), 0o660);
        assert_eq!(sym("o=g", 0o654, false), 0o655);
        assert_eq!(sym("u+s", 0o755, false), 0o4755);
        assert_eq!(sym("g+s", 0o755, true), 0o2755);
        assert_eq!(sym("+t", 0o777, true), 0o1777);
        assert_eq!(sym("u=rw-w+x", 0o000, false), 0o500);
        // New entries start from 0644 / 0755.
        assert_eq!(Mode::parse("g+w").unwrap().target(None, false), 0o664);
        assert_eq!(Mode::parse("o-rx").unwrap().target(None, true), 0o750);
    }

    #[test]
    fn symbolic_is_idempotent() {
        for s in ["u=rw,go=r", "go-w", "a+X", "g=u", "u+s,o-rwx", "=r"] {
            let m = Mode::parse(s).unwrap();
            for cur in [0o000, 0o644, 0o755, 0o4711, 0o1777] {
                for dir in [false, true] {
                    let once = m.target(Some(cur), dir);
                    assert_eq!(m.target(Some(once), dir), once, "{s} on {cur:o}");
                }
            }
        }
    }

    #[test]
    fn show_pads() {
        assert_eq!(show(0o644), "0644");
        assert_eq!(show(0o4755), "4755");
        assert_eq!(show(0), "0000");
    }
}
