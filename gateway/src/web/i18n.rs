//! Languages of the web UI: Dutch first, English second. Messages live in
//! Fluent files (`gateway/locales/{nl,en}/main.ftl`), compiled into the
//! binary. The language comes from the `kluis_lang` cookie (the switch in
//! every page's header), else the browser's `Accept-Language`, else Dutch.
//! Dates and numbers are written the Dutch way in both languages' pages
//! where the agency reads them (`7-12-2026`, `1,5 MB`), on the agency's
//! clock (Europe/Amsterdam).

use std::borrow::Cow;
use std::collections::HashMap;

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDate, Utc};
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid};

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "nl",
        // No bidi isolation marks around placeables: the pages are
        // left-to-right, and the marks would end up in names and titles.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// The cookie that holds the chosen language.
pub const LANG_COOKIE: &str = "kluis_lang";

/// A page's language and its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nl,
    En,
}

static NL: LanguageIdentifier = langid!("nl");
static EN: LanguageIdentifier = langid!("en");

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        match self {
            Lang::Nl => &NL,
            Lang::En => &EN,
        }
    }

    /// The vault's name of this language (a user's stored choice).
    pub fn language(self) -> vault::domain::Language {
        match self {
            Lang::Nl => vault::domain::Language::Nl,
            Lang::En => vault::domain::Language::En,
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "nl" => Some(Lang::Nl),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The cookie's choice, else the browser's first language we have,
    /// else Dutch.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(l) = super::session::cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)) {
            return l;
        }
        let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut best: Option<(f32, Lang)> = None;
        for part in accept.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(l) = Lang::parse(primary)
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, l));
            }
        }
        best.map_or(Lang::Nl, |(_, l)| l)
    }
}

impl From<vault::domain::Language> for Lang {
    fn from(l: vault::domain::Language) -> Lang {
        match l {
            vault::domain::Language::Nl => Lang::Nl,
            vault::domain::Language::En => Lang::En,
        }
    }
}

/// What a template holds to translate: `tr.t("key")`.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Tr {
        Tr { lang }
    }

    /// The message `key`.
    pub fn t(&self, key: &str) -> String {
        LOCALES.lookup(self.lang.id(), key)
    }

    /// The message `key`, if the files have it.
    pub fn try_t(&self, key: &str) -> Option<String> {
        LOCALES.try_lookup(self.lang.id(), key)
    }

    /// The message `key` with one argument.
    pub fn t1(&self, key: &str, name: &'static str, value: &str) -> String {
        self.with_args(key, &[(name, value)])
    }

    /// The message `key` with two arguments.
    pub fn t2(&self, key: &str, a: (&'static str, &str), b: (&'static str, &str)) -> String {
        self.with_args(key, &[a, b])
    }

    /// The message `key` with three arguments.
    pub fn t3(&self, key: &str, a: (&'static str, &str), b: (&'static str, &str), c: (&'static str, &str)) -> String {
        self.with_args(key, &[a, b, c])
    }

    fn with_args(&self, key: &str, args: &[(&'static str, &str)]) -> String {
        let map: HashMap<Cow<'static, str>, FluentValue<'_>> =
            args.iter().map(|(k, v)| (Cow::Borrowed(*k), FluentValue::from(v.to_string()))).collect();
        LOCALES.lookup_with_args(self.lang.id(), key, &map)
    }

    /// A count with a point between thousands, as in Dutch: `1.234.567`.
    pub fn number(&self, n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('.');
            }
            out.push(ch);
        }
        out
    }

    /// A date as the agency writes it: `7-12-2026`.
    pub fn date(&self, d: NaiveDate) -> String {
        d.format("%-d-%-m-%Y").to_string()
    }

    /// An instant's date on the agency's clock.
    pub fn day(&self, t: DateTime<Utc>) -> String {
        self.date(t.with_timezone(&chrono_tz::Europe::Amsterdam).date_naive())
    }

    /// An instant on the agency's clock: `7-12-2026 14:05`.
    pub fn time(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&chrono_tz::Europe::Amsterdam).format("%-d-%-m-%Y %H:%M").to_string()
    }

    /// A size in bytes, in units of 1024 as file managers show them, with
    /// a decimal comma: `1,5 MB`.
    pub fn size(&self, bytes: i64) -> String {
        let b = bytes.max(0) as f64;
        let (v, unit) = if b >= 1024.0 * 1024.0 * 1024.0 {
            (b / (1024.0 * 1024.0 * 1024.0), "GB")
        } else if b >= 1024.0 * 1024.0 {
            (b / (1024.0 * 1024.0), "MB")
        } else if b >= 1024.0 {
            (b / 1024.0, "kB")
        } else {
            return format!("{bytes} B");
        };
        let s = format!("{v:.1}");
        let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
        format!("{} {unit}", s.replace('.', ","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        let mut k: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && l.contains(" = "))
            .map(|l| l.split(" = ").next().unwrap_or("").to_string())
            .collect();
        k.sort();
        k
    }

    #[test]
    fn both_languages_have_the_same_messages() {
        let nl = keys(include_str!("../../locales/nl/main.ftl"));
        let en = keys(include_str!("../../locales/en/main.ftl"));
        assert!(nl.len() > 50, "{nl:?}");
        assert_eq!(nl, en);
        // Every message resolves in both languages, with whatever argument
        // any message takes.
        let mut args: HashMap<Cow<'static, str>, FluentValue<'_>> = HashMap::new();
        for a in [
            "name", "role", "max", "reason", "accepted", "total", "detail", "code", "from", "to", "count", "action",
            "events", "head", "error", "when", "bsn",
        ] {
            args.insert(Cow::Borrowed(a), FluentValue::from("x"));
        }
        for lang in [Lang::Nl, Lang::En] {
            for k in &nl {
                let t = LOCALES.try_lookup_with_args(lang.id(), k, &args);
                assert!(t.as_deref().is_some_and(|t| !t.is_empty() && !t.contains("{ $")), "{lang:?} {k}: {t:?}");
            }
        }
    }

    #[test]
    fn messages_translate_and_take_arguments() {
        let nl = Tr::new(Lang::Nl);
        let en = Tr::new(Lang::En);
        assert_eq!(nl.t("sign-out"), "Afmelden");
        assert_eq!(en.t("sign-out"), "Sign out");
        assert_eq!(nl.t1("upload-refused", "reason", "te groot"), "Geweigerd: te groot");
        assert_eq!(en.t2("upload-summary", ("accepted", "2"), ("total", "3")), "2 of 3 files accepted.");
    }

    #[test]
    fn the_language_comes_from_the_cookie_then_the_browser() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h), Lang::Nl);
        h.insert("accept-language", "de-DE,en-GB;q=0.8,nl;q=0.5".parse().unwrap());
        assert_eq!(Lang::of(&h), Lang::En);
        h.insert("cookie", "kluis_lang=nl".parse().unwrap());
        assert_eq!(Lang::of(&h), Lang::Nl);
    }

    #[test]
    fn dates_and_sizes_are_written_the_dutch_way() {
        let tr = Tr::new(Lang::Nl);
        assert_eq!(tr.date(NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()), "7-12-2026");
        // 23:30 UTC on 31 December is already New Year in Amsterdam.
        let t = DateTime::parse_from_rfc3339("2026-12-31T23:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(tr.time(t), "1-1-2027 00:30");
        assert_eq!(tr.size(1_572_864), "1,5 MB");
        assert_eq!(tr.size(536_870_912), "512 MB");
        assert_eq!(tr.size(2_048), "2 kB");
        assert_eq!(tr.size(12), "12 B");
        assert_eq!(
            (tr.number(1_234_567), tr.number(999), tr.number(1000)),
            ("1.234.567".into(), "999".into(), "1.000".into())
        );
    }
}
