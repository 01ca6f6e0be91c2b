//! Property tests of the parsers and rules that read user input: HCL parameter parsing
//! and parameter validation (archive extraction, terraform JSON lines and HCL escaping
//! have theirs beside their code). 40,000 generated cases, about 3 s.

use hangar::model::parameter::{parameters_in, resolve, ParamType, Parameter, Validation};
use hangar::provisioner::workdir::escape_hcl_string;
use proptest::prelude::*;

/// Text a template author might write in a string: quotes, backslashes, newlines,
/// interpolation starts, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r#"([a-zA-Z0-9 _.,:/-]|"|\\|\n|\t|\$\{|%\{|\$|%|\{|\}|é|日){0,24}"#,
    )
    .unwrap()
}

fn kind() -> impl Strategy<Value = ParamType> {
    prop_oneof![
        Just(ParamType::String),
        Just(ParamType::Number),
        Just(ParamType::Bool),
        Just(ParamType::ListString),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// A `hangar_parameter` block written with properly escaped strings reads back with
    /// exactly the values written.
    #[test]
    fn a_parameter_block_reads_back_what_was_written(
        label in "[a-z][a-z0-9_]{0,15}",
        display_name in text(),
        description in text(),
        default in proptest::option::of(text()),
        kind in kind(),
        mutable in any::<bool>(),
        order in -1000i64..1000,
    ) {
        let q = |s: &str| format!("\"{}\"", escape_hcl_string(s));
        let mut hcl = format!(
            "data \"hangar_parameter\" \"{label}\" {{\n  name = \"{label}\"\n  display_name = {}\n  description = {}\n  type = \"{}\"\n  mutable = {mutable}\n  order = {order}\n",
            q(&display_name), q(&description), kind.as_str(),
        );
        if let Some(d) = &default {
            hcl.push_str(&format!("  default = {}\n", q(d)));
        }
        hcl.push_str("}\n");
        let params = parameters_in("main.tf", &hcl).map_err(|e| TestCaseError::fail(format!("{e:?}\n{hcl}")))?;
        prop_assert_eq!(params.len(), 1, "{}", hcl);
        let p = &params[0];
        prop_assert_eq!(&p.name, &label);
        prop_assert_eq!(&p.display_name, &display_name, "{}", hcl);
        prop_assert_eq!(&p.description, &description, "{}", hcl);
        prop_assert_eq!(&p.default, &default, "{}", hcl);
        prop_assert_eq!(p.kind, kind);
        prop_assert_eq!(p.mutable, mutable);
        prop_assert_eq!(p.order, order);
    }

    /// Numbers are accepted exactly when they lie within the bounds.
    #[test]
    fn a_number_is_accepted_exactly_within_its_bounds(
        min in -1e6f64..1e6,
        span in 0f64..1e6,
        value in -3e6f64..3e6,
    ) {
        let max = min + span;
        let p = Parameter {
            name: "n".into(),
            kind: ParamType::Number,
            validation: Some(Validation { min: Some(min), max: Some(max), ..Default::default() }),
            ..Default::default()
        };
        let text = value.to_string();
        let result = p.check(&text, None);
        prop_assert_eq!(result.is_ok(), (min..=max).contains(&value), "{:?}", result);
        if let Err(e) = result {
            prop_assert!(e.contains("minimum") || e.contains("maximum"), "{}", e);
        }
    }

    /// Resolving any given values against any parameters either yields a value for every
    /// parameter and nothing else, or reports each problem by parameter name.
    #[test]
    fn resolve_values_cover_exactly_the_parameters(
        specs in proptest::collection::vec(("[a-c]{1,2}", kind(), proptest::option::of("[a-z0-9]{0,4}"), any::<bool>()), 0..5),
        given in proptest::collection::btree_map("[a-d]{1,2}", "[a-z0-9\\[\\]\",]{0,6}", 0..5),
    ) {
        let mut params: Vec<Parameter> = Vec::new();
        for (name, kind, default, mutable) in specs {
            if params.iter().all(|p| p.name != name) {
                params.push(Parameter { name, kind, default, mutable, ..Default::default() });
            }
        }
        match resolve(&params, &given, None) {
            Ok(values) => {
                let names: Vec<&String> = params.iter().map(|p| &p.name).collect();
                let mut names = names;
                names.sort();
                prop_assert_eq!(values.keys().collect::<Vec<_>>(), names);
                for p in &params {
                    prop_assert!(p.check(&values[&p.name], None).is_ok());
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for pr in problems {
                    prop_assert!(
                        params.iter().any(|p| p.name == pr.name) || given.contains_key(&pr.name),
                        "a problem names a parameter or a given value: {:?}", pr.name
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Whatever the text, reading parameters from it answers (a list or an error naming
    /// the file); it never panics.
    #[test]
    fn any_text_parses_or_errors(body in r#"(data|"hangar_parameter"|"x"|\{|\}|\[|\]|\(|\)|=|name|default|"|\$\{|\n| |[a-z0-9]|,|\.|\?|:|!|-){0,120}"#) {
        match parameters_in("main.tf", &body) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().contains("main.tf"), "{}", e),
        }
    }
}
