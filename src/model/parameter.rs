//! Template parameters: what a template asks for, found statically in its HCL, and the
//! rules a value must meet. The provider enforces the same rules inside terraform; the
//! server checks them first so a bad value never starts a build.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub enum ParamType {
    #[default]
    #[serde(rename = "string")]
    String,
    #[serde(rename = "number")]
    Number,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "list(string)")]
    ListString,
}

impl ParamType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => ParamType::String,
            "number" => ParamType::Number,
            "bool" => ParamType::Bool,
            "list(string)" => ParamType::ListString,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Number => "number",
            ParamType::Bool => "bool",
            ParamType::ListString => "list(string)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct ParamOption {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub icon: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Validation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `increasing` or `decreasing`: compared with the previous build's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monotonic: Option<String>,
}

/// The form controls a parameter may use, by type and whether it has options (Coder's
/// table, so a Coder template's `form_type` means the same here); the first is the
/// default.
pub fn allowed_form_types(kind: ParamType, has_options: bool) -> &'static [&'static str] {
    match (kind, has_options) {
        (ParamType::String, false) => &["input", "textarea"],
        (ParamType::Number, false) => &["input", "slider"],
        (ParamType::Bool, false) => &["checkbox", "switch"],
        (ParamType::ListString, false) => &["tag-select"],
        (ParamType::ListString, true) => &["radio", "multi-select"],
        (_, true) => &["radio", "dropdown"],
    }
}

/// The control a parameter is shown with: its `form_type`, or the default for its type
/// and options. An unknown or disallowed one is an error naming what is allowed.
pub fn form_type(
    kind: ParamType,
    has_options: bool,
    specified: &str,
) -> Result<&'static str, String> {
    let allowed = allowed_form_types(kind, has_options);
    if specified.is_empty() {
        return Ok(allowed[0]);
    }
    allowed
        .iter()
        .copied()
        .find(|f| *f == specified)
        .ok_or_else(|| {
            let other = allowed_form_types(kind, !has_options);
            let when = if other.contains(&specified) {
                if has_options {
                    " when options exist"
                } else {
                    " when options do not exist"
                }
            } else {
                ""
            };
            format!(
            "form_type \"{specified}\" is not supported for type \"{}\"{when}; choose one of {}",
            kind.as_str(),
            allowed.join(", ")
        )
        })
}

/// The largest parameter value accepted: values travel through the environment and the
/// database, and no template needs more.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Parameter {
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub mutable: bool,
    #[serde(default)]
    pub ephemeral: bool,
    #[serde(default)]
    pub icon: String,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub options: Vec<ParamOption>,
    #[serde(default)]
    pub validation: Option<Validation>,
    /// The control the create form uses (Coder's `form_type`); empty for the default.
    #[serde(default)]
    pub form_type: String,
}

impl Parameter {
    /// The form control to show (see `form_type`); the default when the template's is
    /// not allowed (the provider refused it at push).
    pub fn control(&self) -> &'static str {
        let has_options = !self.options.is_empty();
        form_type(self.kind, has_options, &self.form_type)
            .unwrap_or(allowed_form_types(self.kind, has_options)[0])
    }

    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    /// Checks `value` against every rule; the message names the parameter and the rule.
    pub fn check(&self, value: &str, previous: Option<&str>) -> Result<(), String> {
        let name = &self.name;
        let fail = |rule: String| -> Result<(), String> {
            let custom = self.validation.as_ref().and_then(|v| v.error.clone());
            Err(match custom {
                Some(msg) if !msg.is_empty() => {
                    // As Coder does: the template's message may quote the value and bounds.
                    let bound = |b: Option<f64>| b.map(|b| b.to_string()).unwrap_or_default();
                    let v = self.validation.as_ref();
                    let msg = msg
                        .replace("{value}", value)
                        .replace("{min}", &bound(v.and_then(|v| v.min)))
                        .replace("{max}", &bound(v.and_then(|v| v.max)));
                    format!("parameter {name:?}: {msg} ({rule})")
                }
                _ => format!("parameter {name:?}: {rule}"),
            })
        };
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "parameter {name:?}: the value is {} bytes; values are limited to {} KiB",
                value.len(),
                MAX_VALUE_BYTES / 1024
            ));
        }
        if value.contains('\0') {
            return Err(format!(
                "parameter {name:?}: the value contains a NUL byte, which no template can use"
            ));
        }
        let number = match self.kind {
            // `nan` and `inf` parse as floats but are no numbers a rule can bound.
            ParamType::Number => match value.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => return fail(format!("{value:?} is not a number")),
            },
            ParamType::Bool if parse_bool(value).is_none() => {
                return fail(format!("{value:?} is not a bool: use true or false"));
            }
            _ => None,
        };
        if self.kind == ParamType::ListString {
            let items: Vec<String> = match serde_json::from_str(value) {
                Ok(items) => items,
                Err(_) => {
                    return fail(format!(
                        "{value:?} is not a list of strings: write it as JSON, e.g. [\"a\",\"b\"]"
                    ))
                }
            };
            if !self.options.is_empty() {
                if let Some(bad) = items
                    .iter()
                    .find(|i| !self.options.iter().any(|o| &o.value == *i))
                {
                    return fail(format!(
                        "{bad:?} is not one of the options: {}",
                        self.option_values()
                    ));
                }
            }
        } else if !self.options.is_empty() && !self.options.iter().any(|o| o.value == value) {
            return fail(format!(
                "{value:?} is not one of the options: {}",
                self.option_values()
            ));
        }
        let Some(rules) = &self.validation else {
            return Ok(());
        };
        if let Some(pattern) = &rules.regex {
            match regex::Regex::new(pattern) {
                Ok(re) if !re.is_match(value) => {
                    return fail(format!("{value:?} does not match the regex {pattern:?}"));
                }
                Ok(_) => {}
                Err(e) => return fail(format!("the template's regex {pattern:?} is invalid: {e}")),
            }
        }
        if let Some(n) = number {
            if let Some(min) = rules.min {
                if n < min {
                    return fail(format!("{value} is below the minimum {min}"));
                }
            }
            if let Some(max) = rules.max {
                if n > max {
                    return fail(format!("{value} is above the maximum {max}"));
                }
            }
            let prev = previous.and_then(|p| p.trim().parse::<f64>().ok());
            match (rules.monotonic.as_deref(), prev) {
                (Some("increasing"), Some(p)) if n < p => {
                    return fail(format!(
                        "must be monotonically increasing: {value} is below the previous value {p}"
                    ));
                }
                (Some("decreasing"), Some(p)) if n > p => {
                    return fail(format!(
                        "must be monotonically decreasing: {value} is above the previous value {p}"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn option_values(&self) -> String {
        self.options
            .iter()
            .map(|o| o.value.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An HCL file that does not parse: which file and what the parser said (with its line).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct HclError {
    pub file: String,
    pub message: String,
}

/// Finds every `data "hangar_parameter"` (or `coder_parameter`) block in the module's
/// files. Attributes that are not literals (references, functions) are left unset: the
/// import's dry run fills in the evaluated values later.
pub fn parse_static(files: &[(String, String)]) -> Result<Vec<Parameter>, HclError> {
    let mut found = Vec::new();
    for (file, text) in files {
        found.extend(parameters_in(file, text)?);
    }
    sort_parameters(&mut found);
    Ok(found)
}

/// The parameters one file declares (none for `.tf.tera` files: before rendering they
/// are not HCL).
pub fn parameters_in(file: &str, text: &str) -> Result<Vec<Parameter>, HclError> {
    if !file.ends_with(".tf") {
        return Ok(Vec::new());
    }
    let body: hcl::Body = hcl::parse(text).map_err(|e| HclError {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let mut found = Vec::new();
    for block in body.blocks() {
        let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
        if block.identifier() != "data" || labels.len() != 2 {
            continue;
        }
        if labels[0] != "hangar_parameter" && labels[0] != "coder_parameter" {
            continue;
        }
        found.push(parameter_from_block(block, labels[1]));
    }
    Ok(found)
}

/// The order forms and prompts show parameters in: `order`, then name.
pub fn sort_parameters(params: &mut [Parameter]) {
    params.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
}

fn parameter_from_block(block: &hcl::Block, label: &str) -> Parameter {
    let attrs = &block.body;
    let mut p = Parameter {
        name: literal(attrs, "name").unwrap_or_else(|| label.to_string()),
        display_name: literal(attrs, "display_name").unwrap_or_default(),
        description: literal(attrs, "description").unwrap_or_default(),
        kind: literal(attrs, "type")
            .and_then(|t| ParamType::parse(&t))
            .unwrap_or_default(),
        default: literal(attrs, "default"),
        mutable: literal(attrs, "mutable").as_deref() == Some("true"),
        ephemeral: literal(attrs, "ephemeral").as_deref() == Some("true"),
        icon: literal(attrs, "icon").unwrap_or_default(),
        order: literal(attrs, "order")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0),
        form_type: literal(attrs, "form_type").unwrap_or_default(),
        ..Default::default()
    };
    for inner in attrs.blocks() {
        match inner.identifier() {
            "option" => p.options.push(ParamOption {
                name: literal(&inner.body, "name").unwrap_or_default(),
                value: literal(&inner.body, "value").unwrap_or_default(),
                description: literal(&inner.body, "description").unwrap_or_default(),
                icon: literal(&inner.body, "icon").unwrap_or_default(),
            }),
            "validation" => {
                let num = |k: &str| literal(&inner.body, k).and_then(|v| v.parse::<f64>().ok());
                p.validation = Some(Validation {
                    min: num("min"),
                    max: num("max"),
                    regex: literal(&inner.body, "regex"),
                    error: literal(&inner.body, "error"),
                    monotonic: literal(&inner.body, "monotonic"),
                });
            }
            _ => {}
        }
    }
    p
}

/// The literal value of an attribute as text, as Hangar passes every parameter value.
fn literal(body: &hcl::Body, key: &str) -> Option<String> {
    let attr = body.attributes().find(|a| a.key() == key)?;
    literal_expr(attr.expr())
}

fn literal_expr(expr: &hcl::Expression) -> Option<String> {
    use hcl::Expression as E;
    match expr {
        E::String(s) => Some(s.clone()),
        E::Number(n) => Some(n.to_string()),
        E::Bool(b) => Some(b.to_string()),
        E::Array(items) => {
            let texts: Option<Vec<String>> = items.iter().map(literal_expr).collect();
            Some(serde_json::to_string(&texts?).ok()?)
        }
        E::TemplateExpr(t) => {
            // A quoted string without interpolation is a template expression too.
            let text = t.to_string();
            let inner = text.strip_prefix('"')?.strip_suffix('"')?;
            (!inner.contains("${")).then(|| inner.to_string())
        }
        E::Parenthesis(inner) => literal_expr(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(kind: ParamType) -> Parameter {
        Parameter {
            name: "p".into(),
            kind,
            ..Default::default()
        }
    }

    #[test]
    fn parses_parameters_statically() {
        let hcl = r#"
data "hangar_parameter" "cpu" {
  name        = "cpu"
  type        = "number"
  default     = 2
  description = "Cores"
  mutable     = true
  order       = 2
  validation {
    min       = 1
    max       = 8
    monotonic = "increasing"
  }
}
data "coder_parameter" "region" {
  name    = "region"
  default = "eu"
  option {
    name  = "Europe"
    value = "eu"
  }
  option {
    name  = "US"
    value = "us"
  }
}
data "hangar_parameter" "computed" {
  name    = "x"
  default = local.nope
}
resource "terraform_data" "r" {}
"#;
        let params = parse_static(&[("main.tf".into(), hcl.into())]).unwrap();
        let names: Vec<_> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["region", "x", "cpu"]);
        let cpu = &params[2];
        assert_eq!(cpu.kind, ParamType::Number);
        assert_eq!(cpu.default.as_deref(), Some("2"));
        assert!(cpu.mutable && !cpu.ephemeral);
        assert_eq!(cpu.validation.as_ref().unwrap().max, Some(8.0));
        assert_eq!(params[0].options.len(), 2);
        assert_eq!(
            params[1].default, None,
            "a reference is not a static default"
        );
    }

    #[test]
    fn form_types_follow_coders_table() {
        use ParamType::*;
        assert_eq!(form_type(String, true, ""), Ok("radio"));
        assert_eq!(form_type(String, true, "dropdown"), Ok("dropdown"));
        assert_eq!(form_type(Number, false, "slider"), Ok("slider"));
        assert_eq!(form_type(Bool, false, "switch"), Ok("switch"));
        assert_eq!(
            form_type(ListString, true, "multi-select"),
            Ok("multi-select")
        );
        assert_eq!(form_type(ListString, false, ""), Ok("tag-select"));
        let err = form_type(String, false, "dropdown").unwrap_err();
        assert!(err.contains("when options do not exist"), "{err}");
        assert!(err.contains("input, textarea"), "{err}");
        let err = form_type(Bool, false, "wheel").unwrap_err();
        assert!(!err.contains("when"), "{err}");
    }

    #[test]
    fn broken_hcl_names_file_and_line() {
        let err = parse_static(&[("bad.tf".into(), "resource \"a\" \"b\" {\n  x = \n".into())])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bad.tf:"), "{text}");
        assert!(text.contains("line"), "{text}");
    }

    #[test]
    fn checks_every_rule() {
        let mut n = param(ParamType::Number);
        n.validation = Some(Validation {
            min: Some(1.0),
            max: Some(4.0),
            monotonic: Some("increasing".into()),
            ..Default::default()
        });
        assert!(n.check("2", Some("1")).is_ok());
        assert!(n.check("two", None).unwrap_err().contains("not a number"));
        for no_number in ["nan", "NaN", "inf", "-infinity"] {
            assert!(n
                .check(no_number, None)
                .unwrap_err()
                .contains("not a number"));
        }
        assert!(n
            .check("0", None)
            .unwrap_err()
            .contains("below the minimum 1"));
        assert!(n
            .check("5", None)
            .unwrap_err()
            .contains("above the maximum 4"));
        assert!(n
            .check("2", Some("3"))
            .unwrap_err()
            .contains("monotonically increasing"));

        let mut s = param(ParamType::String);
        s.validation = Some(Validation {
            regex: Some("^[a-z]+$".into()),
            error: Some("letters only".into()),
            ..Default::default()
        });
        let err = s.check("A1", None).unwrap_err();
        assert!(
            err.contains("letters only") && err.contains("regex"),
            "{err}"
        );

        let mut o = param(ParamType::String);
        o.options = vec![ParamOption {
            name: "A".into(),
            value: "a".into(),
            ..Default::default()
        }];
        assert!(o
            .check("b", None)
            .unwrap_err()
            .contains("not one of the options: a"));

        assert!(param(ParamType::Bool)
            .check("yes", None)
            .unwrap_err()
            .contains("true or false"));
        assert!(param(ParamType::ListString)
            .check("a,b", None)
            .unwrap_err()
            .contains("JSON"));
        assert!(param(ParamType::ListString).check("[\"a\"]", None).is_ok());
    }
}

/// One parameter value that failed its rules: which and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamProblem {
    pub name: String,
    pub detail: String,
}

/// The values a build will use: given ones, else the previous build's (unless
/// ephemeral), else defaults. Every rule is checked and every problem reported at once.
pub fn resolve(
    params: &[Parameter],
    given: &std::collections::BTreeMap<String, String>,
    previous: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<std::collections::BTreeMap<String, String>, Vec<ParamProblem>> {
    let mut problems = Vec::new();
    let mut values = std::collections::BTreeMap::new();
    for name in given.keys() {
        if !params.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            problems.push(ParamProblem {
                name: name.clone(),
                detail: format!(
                    "the template has no parameter {name:?} (it has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
    }
    for p in params {
        let prev = previous.and_then(|m| m.get(&p.name));
        let value = match (given.get(&p.name), prev) {
            (Some(v), Some(old)) if !p.mutable && v != old => {
                problems.push(ParamProblem {
                    name: p.name.clone(),
                    detail: format!("parameter {:?} is immutable and cannot be changed after the workspace is created (it is {old:?})", p.name),
                });
                continue;
            }
            (Some(v), _) => v.clone(),
            (None, Some(old)) if !p.ephemeral => old.clone(),
            _ => match &p.default {
                Some(d) => d.clone(),
                None => {
                    problems.push(ParamProblem {
                        name: p.name.clone(),
                        detail: format!(
                            "parameter {:?} is required: pass --parameter {}=<value>{}",
                            p.name,
                            p.name,
                            describe(p)
                        ),
                    });
                    continue;
                }
            },
        };
        match p.check(&value, prev.map(|s| s.as_str())) {
            Ok(()) => {
                values.insert(p.name.clone(), value);
            }
            Err(detail) => problems.push(ParamProblem {
                name: p.name.clone(),
                detail,
            }),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

fn describe(p: &Parameter) -> String {
    let mut out = String::new();
    if !p.description.is_empty() {
        out.push_str(&format!(" ({})", p.description));
    }
    if !p.options.is_empty() {
        out.push_str(&format!("; one of: {}", p.option_values()));
    }
    out
}

#[cfg(test)]
mod resolve_tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_custom_error_quotes_the_value_and_bounds() {
        let p = Parameter {
            name: "cpus".into(),
            kind: ParamType::Number,
            validation: Some(Validation {
                min: Some(1.0),
                max: Some(8.0),
                error: Some("{value} CPUs is not between {min} and {max}".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            p.check("12", None).unwrap_err(),
            "parameter \"cpus\": 12 CPUs is not between 1 and 8 (12 is above the maximum 8)"
        );
    }

    #[test]
    fn fills_from_previous_and_defaults_and_reports_all_problems() {
        let params = vec![
            Parameter {
                name: "region".into(),
                default: Some("eu".into()),
                ..Default::default()
            },
            Parameter {
                name: "size".into(),
                mutable: true,
                ..Default::default()
            },
            Parameter {
                name: "token".into(),
                mutable: true,
                ephemeral: true,
                default: Some("none".into()),
                ..Default::default()
            },
        ];
        let got = resolve(&params, &map(&[("size", "2")]), None).unwrap();
        assert_eq!(
            got,
            map(&[("region", "eu"), ("size", "2"), ("token", "none")])
        );

        let prev = map(&[("region", "us"), ("size", "2"), ("token", "secret")]);
        let got = resolve(&params, &BTreeMap::new(), Some(&prev)).unwrap();
        assert_eq!(
            got,
            map(&[("region", "us"), ("size", "2"), ("token", "none")]),
            "ephemeral values do not carry over"
        );

        let problems = resolve(
            &params,
            &map(&[("region", "eu"), ("nope", "1")]),
            Some(&prev),
        )
        .unwrap_err();
        let text: Vec<&str> = problems.iter().map(|p| p.detail.as_str()).collect();
        assert!(text[0].contains("no parameter \"nope\""), "{text:?}");
        assert!(text[1].contains("immutable"), "{text:?}");

        let missing = resolve(&params, &BTreeMap::new(), None).unwrap_err();
        assert!(
            missing[0].detail.contains("--parameter size=<value>"),
            "{missing:?}"
        );
    }
}

/// A bool as Coder's provider reads one (Go's `strconv.ParseBool`): `true`/`false`, `1`/`0`,
/// `t`/`f`, in lower, upper or title case.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
