//! The plumbing every data source and resource shares: schema shorthands, typed access to
//! Terraform's dynamic values, and adapters from small "specs" to `tf-provider`'s traits.
//!
//! States are handled as [`ValueAny`] objects rather than one Rust struct per type: every
//! Hangar resource only stores its configuration plus a few computed attributes, so the
//! plan/apply rules are the same for all of them and live here once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tf_provider::value::{ValueAny, ValueEmpty};
use tf_provider::{AttributePath, DataSource, Diagnostics, Resource};

pub type Obj = BTreeMap<String, ValueAny>;

fn attribute(t: AttributeType, constraint: AttributeConstraint, description: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::markdown(description),
        constraint,
        sensitive: false,
        deprecated: false,
    }
}

pub fn required(t: AttributeType, description: &str) -> Attribute {
    attribute(t, AttributeConstraint::Required, description)
}
pub fn optional(t: AttributeType, description: &str) -> Attribute {
    attribute(t, AttributeConstraint::Optional, description)
}
/// Optional with a default the provider fills in at plan time.
pub fn defaulted(t: AttributeType, description: &str) -> Attribute {
    attribute(t, AttributeConstraint::OptionalComputed, description)
}
pub fn computed(t: AttributeType, description: &str) -> Attribute {
    attribute(t, AttributeConstraint::Computed, description)
}
pub fn sensitive(mut a: Attribute) -> Attribute {
    a.sensitive = true;
    a
}
pub fn string() -> AttributeType {
    AttributeType::String
}
pub fn number() -> AttributeType {
    AttributeType::Number
}
pub fn boolean() -> AttributeType {
    AttributeType::Bool
}

pub fn block(description: &str, attributes: Vec<(&str, Attribute)>) -> Block {
    Block {
        version: 1,
        description: Description::markdown(description),
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    }
}

pub fn with_blocks(mut b: Block, blocks: Vec<(&str, NestedBlock)>) -> Block {
    b.blocks = blocks
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    b
}

pub fn schema(b: Block) -> Schema {
    Schema {
        version: 1,
        block: b,
    }
}

/// A known string attribute (`None` when null, unknown or another type).
pub fn get_str<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    match o.get(key) {
        Some(ValueAny::String(s)) => Some(s),
        _ => None,
    }
}
pub fn get_i64(o: &Obj, key: &str) -> Option<i64> {
    match o.get(key) {
        Some(ValueAny::Number(n)) => Some(*n),
        _ => None,
    }
}
pub fn get_bool(o: &Obj, key: &str) -> Option<bool> {
    match o.get(key) {
        Some(ValueAny::Bool(b)) => Some(*b),
        _ => None,
    }
}
/// The objects of a nested block (list nesting); empty when absent.
pub fn get_blocks(o: &Obj, key: &str) -> Vec<Obj> {
    match o.get(key) {
        Some(ValueAny::List(items)) => items
            .iter()
            .filter_map(|i| match i {
                ValueAny::Map(m) => Some(m.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
pub fn is_unknown(o: &Obj, key: &str) -> bool {
    matches!(o.get(key), Some(ValueAny::Unknown))
}
pub fn is_null(o: &Obj, key: &str) -> bool {
    matches!(o.get(key), None | Some(ValueAny::Null))
}
pub fn s(v: impl Into<String>) -> ValueAny {
    ValueAny::String(v.into())
}

fn as_obj(v: ValueAny, diags: &mut Diagnostics) -> Option<Obj> {
    match v {
        ValueAny::Map(m) => Some(m),
        other => {
            diags.root_error_short(format!("expected an object, got {}", other.json()));
            None
        }
    }
}

/// An error about one attribute; terraform shows it against that line of the module.
pub fn attr_error(diags: &mut Diagnostics, attr: &'static str, summary: String) {
    diags.error_short(summary, AttributePath::new(attr));
}

/// A fresh random identifier (resources' `id`, as Coder uses UUIDs).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What makes one data source.
pub trait DataSpec: Send + Sync + 'static {
    fn schema(&self) -> Schema;
    /// Checks the configuration; values may still be unknown here.
    fn validate(&self, _config: &Obj, _diags: &mut Diagnostics) {}
    /// Fills the computed attributes of `state` (which starts as the configuration).
    fn read(&self, state: &mut Obj, diags: &mut Diagnostics);
}

pub struct Data<S>(pub S);

#[async_trait]
impl<S: DataSpec> DataSource for Data<S> {
    type State<'a> = ValueAny;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(self.0.schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ValueAny) -> Option<()> {
        let config = as_obj(config, diags)?;
        self.0.validate(&config, diags);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: ValueAny,
        _meta: ValueEmpty,
    ) -> Option<ValueAny> {
        let mut state = as_obj(config, diags)?;
        self.0.read(&mut state, diags);
        Some(ValueAny::Map(state))
    }
}

/// What makes one resource. Resources store their configuration; the provider adds the
/// computed attributes.
pub trait ResourceSpec: Send + Sync + 'static {
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Obj, _diags: &mut Diagnostics) {}
    /// Attributes whose change replaces the resource (a new `id`) instead of updating it.
    fn force_new(&self) -> &'static [&'static str];
    /// Provider-computed attributes: unknown in a create plan, kept across updates.
    fn computed(&self) -> &'static [&'static str] {
        &["id"]
    }
    /// Defaults of optional attributes, filled in when the configuration leaves them null.
    fn defaults(&self) -> Vec<(&'static str, ValueAny)> {
        Vec::new()
    }
    /// Sets the computed attributes of a new resource (at least `id`).
    fn create(&self, state: &mut Obj) {
        state.insert("id".into(), s(new_id()));
    }
    /// Recomputes attributes that must change on every refresh (the agent's token).
    fn refresh(&self, _state: &mut Obj) {}
    /// Fills attributes derived from the configuration (known at plan time), after the
    /// defaults.
    fn normalize(&self, _state: &mut Obj) {}
}

pub struct Res<S>(pub S);

impl<S: ResourceSpec> Res<S> {
    fn fill_defaults(&self, state: &mut Obj) {
        for (key, value) in self.0.defaults() {
            if is_null(state, key) {
                state.insert(key.to_string(), value);
            }
        }
        self.0.normalize(state);
    }
}

#[async_trait]
impl<S: ResourceSpec> Resource for Res<S> {
    type State<'a> = ValueAny;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(self.0.schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ValueAny) -> Option<()> {
        let config = as_obj(config, diags)?;
        self.0.validate(&config, diags);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: ValueAny,
        private: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ValueAny, ValueEmpty)> {
        // Nothing outside terraform holds these resources, so a read never finds one gone.
        let mut state = as_obj(state, diags)?;
        self.0.refresh(&mut state);
        Some((ValueAny::Map(state), private))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: ValueAny,
        _config: ValueAny,
        _meta: ValueEmpty,
    ) -> Option<(ValueAny, ValueEmpty)> {
        let mut state = as_obj(proposed, diags)?;
        self.fill_defaults(&mut state);
        for key in self.0.computed() {
            state.insert(key.to_string(), ValueAny::Unknown);
        }
        Some((ValueAny::Map(state), ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ValueAny,
        proposed: ValueAny,
        _config: ValueAny,
        private: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ValueAny, ValueEmpty, Vec<AttributePath>)> {
        let prior = as_obj(prior, diags)?;
        let mut state = as_obj(proposed, diags)?;
        self.fill_defaults(&mut state);
        let replace: Vec<AttributePath> = self
            .0
            .force_new()
            .iter()
            .filter(|key| state.get(**key) != prior.get(**key))
            .map(|key| AttributePath::new(*key))
            .collect();
        for key in self.0.computed() {
            let value = if replace.is_empty() {
                prior.get(*key).cloned().unwrap_or(ValueAny::Null)
            } else {
                ValueAny::Unknown
            };
            state.insert(key.to_string(), value);
        }
        Some((ValueAny::Map(state), private, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ValueAny,
        private: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: ValueAny,
        _config: ValueAny,
        private: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ValueAny, ValueEmpty)> {
        let mut state = as_obj(planned, diags)?;
        self.0.create(&mut state);
        self.0.refresh(&mut state);
        Some((ValueAny::Map(state), private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        _prior: ValueAny,
        planned: ValueAny,
        _config: ValueAny,
        private: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<(ValueAny, ValueEmpty)> {
        // The plan already carries the prior computed values; an update must not change
        // anything terraform was shown as known.
        Some((ValueAny::Map(as_obj(planned, diags)?), private))
    }

    async fn destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ValueAny,
        _private: ValueEmpty,
        _meta: ValueEmpty,
    ) -> Option<()> {
        Some(())
    }
}

/// The scheme of a URL a browser would run as script (`javascript:`, `data:`,
/// `vbscript:`), if it is one; links from templates must not be.
pub fn script_scheme(url: &str) -> Option<String> {
    let scheme: String = url
        .trim_start()
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take_while(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let has_colon = url.contains(':');
    (has_colon && ["javascript", "data", "vbscript"].contains(&scheme.as_str())).then_some(scheme)
}

#[cfg(test)]
mod script_scheme_tests {
    #[test]
    fn script_urls_are_recognised() {
        for bad in [
            "javascript:alert(1)",
            " JavaScript:x",
            "java\tscript:x",
            "data:text/html,x",
            "vbscript:x",
        ] {
            assert!(super::script_scheme(bad).is_some(), "{bad}");
        }
        for fine in [
            "https://x",
            "vscode://file",
            "http://localhost:8080/data:x",
            "/path",
        ] {
            assert_eq!(super::script_scheme(fine), None, "{fine}");
        }
    }
}
