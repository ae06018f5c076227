//! The bundled `kmsg` resource: a *fact* about the kernel log. It changes nothing on the
//! system; it watches `/dev/kmsg` (the host reads it and wakes the resource on every new
//! record), filters records by message regex, facility and level, and publishes the
//! newest matching record (`line`, `level`, `facility`, `seq`, `timestamp_us`) and how many
//! matched (`count`) for send/recv. A check-apply that saw new matching records reports
//! a change, so a `notify` edge runs its downstream once per burst of matches.
//!
//! Parsing stays here, in the sandbox: [`parse`] turns a raw record
//! (`PRIO,SEQ,TIMESTAMP_US,FLAGS;MESSAGE` plus ` KEY=VALUE` continuation lines) into a
//! [`Entry`]. The read cursor and the count live in the host's per-resource `state`.

use homeostat_sdk::{
    CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, kmsg, log, state,
};
use serde::{Deserialize, Serialize};

/// Syslog facility names, by number.
const FACILITIES: &[&str] = &[
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Syslog level names, by number (0 = most severe).
const LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

fn level_number(name: &str) -> Option<u8> {
    let name = match name {
        "error" => "err",
        "warn" => "warning",
        "panic" => "emerg",
        other => other,
    };
    LEVELS.iter().position(|l| *l == name).map(|n| n as u8)
}

fn facility_number(name: &str) -> Option<u32> {
    FACILITIES
        .iter()
        .position(|f| *f == name)
        .map(|n| n as u32)
        .or_else(|| name.parse().ok())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default, rename = "match")]
    pattern: Option<String>,
    #[serde(default)]
    facility: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    since: Since,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Since {
    #[default]
    Now,
    Boot,
}

/// The checked filter.
struct Filter {
    pattern: Option<regex_lite::Regex>,
    facility: Option<u32>,
    /// Most verbose level accepted.
    level: u8,
}

impl Filter {
    fn from_params(p: &Params) -> Result<Filter> {
        let pattern = p
            .pattern
            .as_deref()
            .map(|re| {
                regex_lite::Regex::new(re).map_err(|e| {
                    Error::param(
                        "match",
                        format!("`{re}` is not a valid regular expression: {e}"),
                    )
                })
            })
            .transpose()?;
        let facility = p
            .facility
            .as_deref()
            .map(|f| {
                facility_number(f).ok_or_else(|| {
                    Error::param(
                        "facility",
                        format!(
                            "unknown facility `{f}`; use one of {}",
                            FACILITIES.join(", ")
                        ),
                    )
                })
            })
            .transpose()?;
        let level = match p.level.as_deref() {
            None => 7,
            Some(l) => level_number(l).ok_or_else(|| {
                Error::param(
                    "level",
                    format!("unknown level `{l}`; use one of {}", LEVELS.join(", ")),
                )
            })?,
        };
        Ok(Filter {
            pattern,
            facility,
            level,
        })
    }

    fn accepts(&self, e: &Entry) -> bool {
        e.level <= self.level
            && self.facility.is_none_or(|f| f == e.facility)
            && self
                .pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&e.message))
    }
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub level: u8,
    pub facility: u32,
    pub timestamp_us: u64,
    /// The message, with the kernel's `\xNN` escapes decoded.
    pub message: String,
    /// Continuation lines (` KEY=VALUE`), e.g. `SUBSYSTEM=pci`.
    pub fields: Vec<(String, String)>,
}

/// Decode the kernel's `\xNN` escapes (it escapes non-printable bytes and `\` itself).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(hex) = s.get(i + 2..i + 4)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a raw `/dev/kmsg` record; `None` for a malformed one.
pub fn parse(raw: &str) -> Option<Entry> {
    let mut lines = raw.split('\n');
    let (header, message) = lines.next()?.split_once(';')?;
    let mut h = header.split(',');
    let prio: u32 = h.next()?.parse().ok()?;
    let seq = h.next()?.parse().ok()?;
    let timestamp_us = h.next()?.parse().ok()?;
    let fields = lines
        .filter_map(|l| l.strip_prefix(' '))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), unescape(v)))
        .collect();
    Some(Entry {
        seq,
        level: (prio & 7) as u8,
        facility: prio >> 3,
        timestamp_us,
        message: unescape(message),
        fields,
    })
}

/// What the resource remembers between check-applies.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// The last record read (`None`: start from the host's first buffered record).
    after: Option<u64>,
    count: u64,
    newest: Option<Entry>,
}

pub struct Kmsg;

impl Resource for Kmsg {
    /// Nothing to release: the host skips `cleanup` calls.
    const CLEANUP: bool = false;
    const KIND: &'static str = "kmsg";
    const SCHEMA: &'static str = include_str!("../schema/kmsg.json");
    type Params = Params;
    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("line", "string"),
        ("level", "string"),
        ("facility", "string"),
        ("seq", "integer"),
        ("timestamp_us", "integer"),
        ("count", "integer"),
    ];

    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        Filter::from_params(p)?;
        Ok(Info::new().watch_kmsg())
    }

    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let filter = Filter::from_params(p)?;
        // The host keeps the cursor across restarts. One that is past the newest record
        // of this boot is from an earlier boot (sequence numbers restart at 0): start over.
        let saved = state::load::<Cursor>().filter(|c| match (c.after, kmsg::start_seq()) {
            (Some(after), Ok(Some(newest))) => after <= newest,
            (Some(_), Ok(None)) => false,
            _ => true,
        });
        let mut cursor = match saved {
            Some(c) => c,
            None => Cursor {
                after: match p.since {
                    Since::Boot => None,
                    Since::Now => kmsg::start_seq().map_err(Error::new)?,
                },
                ..Cursor::default()
            },
        };
        let batch = kmsg::read(cursor.after).map_err(Error::new)?;
        if batch.missed > 0 {
            log::warn(&format!(
                "{} kernel log records were lost before they could be read (overwritten in \
                 the kernel's buffer); the count may be low",
                batch.missed
            ));
        }
        let mut fresh = 0u64;
        for raw in &batch.records {
            let Some(entry) = parse(raw) else {
                log::debug(&format!("skipping a malformed kernel log record: {raw:?}"));
                continue;
            };
            cursor.after = Some(entry.seq);
            if filter.accepts(&entry) {
                fresh += 1;
                cursor.newest = Some(entry);
            }
        }
        cursor.count += fresh;
        let mut out = Outcome::new();
        if fresh > 0
            && ctx.apply
            && let Some(e) = &cursor.newest
        {
            out.change(format!(
                "{fresh} new matching record{} (newest: {})",
                if fresh == 1 { "" } else { "s" },
                e.message
            ));
        }
        out.send("count", cursor.count);
        if let Some(e) = &cursor.newest {
            out.send("line", &e.message);
            out.send("level", LEVELS[usize::from(e.level)]);
            out.send(
                "facility",
                FACILITIES
                    .get(e.facility as usize)
                    .map_or_else(|| e.facility.to_string(), |f| f.to_string()),
            );
            out.send("seq", e.seq);
            out.send("timestamp_us", e.timestamp_us);
        }
        state::save(&cursor);
        Ok(out)
    }
}

homeostat_sdk::export_resource!(Kmsg; capabilities = ["kmsg"]);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn parses_header_message_and_continuation_lines() {
        let e = parse("3,1042,123456789,-;usb 1-1: device \\x5cnot\\x5c accepting address\n SUBSYSTEM=usb\n DEVICE=c189:1\n").unwrap();
        assert_eq!(
            (e.seq, e.level, e.facility, e.timestamp_us),
            (1042, 3, 0, 123456789)
        );
        assert_eq!(e.message, "usb 1-1: device \\not\\ accepting address");
        assert_eq!(
            e.fields,
            [
                ("SUBSYSTEM".to_string(), "usb".to_string()),
                ("DEVICE".to_string(), "c189:1".to_string())
            ]
        );
        // A record written from user space: facility user (1), level warning (4).
        let e = parse("12,339,12171815122,-;homeostat-probe: hello\n").unwrap();
        assert_eq!((e.facility, e.level), (1, 4));
        assert!(parse("no header").is_none());
        assert!(parse("x,1,2,-;m").is_none());
    }

    #[test]
    fn filters_by_level_facility_and_regex() {
        let f = Filter::from_params(&params(
            r#"{"match": "oom|out of memory", "level": "warning", "facility": "kern"}"#,
        ))
        .unwrap();
        let e = |prio: u32, msg: &str| parse(&format!("{prio},1,0,-;{msg}")).unwrap();
        assert!(f.accepts(&e(3, "Out of memory: killed process; oom")));
        assert!(!f.accepts(&e(6, "oom at info level")));
        assert!(!f.accepts(&e(8 + 3, "oom from user space")));
        assert!(!f.accepts(&e(3, "unrelated")));
    }

    #[test]
    fn bad_params_name_the_field() {
        let err = |json| Filter::from_params(&params(json)).err().unwrap();
        assert_eq!(err(r#"{"match": "("}"#).field.as_deref(), Some("match"));
        assert_eq!(err(r#"{"level": "loud"}"#).field.as_deref(), Some("level"));
        assert_eq!(
            err(r#"{"facility": "nope"}"#).field.as_deref(),
            Some("facility")
        );
        assert!(
            Filter::from_params(&params(r#"{"facility": "local3", "level": "error"}"#)).is_ok()
        );
    }
}
