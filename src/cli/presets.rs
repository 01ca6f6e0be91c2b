//! `create --preset`: which preset applies, and the values it brings.

use std::collections::BTreeMap;

use crate::model::preset::Preset;
use crate::wire::templates::VersionView;

/// Adds the chosen preset's values to `values` (for the version's parameters) and returns
/// its name. `named` picks one (`none`: none); without it the template's default applies,
/// unless a value given contradicts it.
pub fn apply(
    version: &VersionView,
    named: Option<&str>,
    values: &mut BTreeMap<String, String>,
) -> anyhow::Result<Option<String>> {
    let Some(preset) = choose_preset(version, named)? else {
        return Ok(None);
    };
    if named.is_none() {
        let clash: Vec<&str> = preset
            .parameters
            .iter()
            .filter(|(k, v)| values.get(*k).is_some_and(|given| given != *v))
            .map(|(k, _)| k.as_str())
            .collect();
        if !clash.is_empty() {
            eprintln!(
                "Not using the template's default preset {:?}: you set {} differently.",
                preset.name,
                clash.join(", ")
            );
            return Ok(None);
        }
        eprintln!(
            "Using preset {:?}, the template's default (--preset none to choose every parameter).",
            preset.name
        );
    }
    for (name, value) in &preset.parameters {
        if version.parameters.iter().any(|v| &v.name == name) {
            values.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    Ok(Some(preset.name))
}

/// The preset a create uses: the one named (`none`: none), else the version's default.
fn choose_preset(version: &VersionView, named: Option<&str>) -> anyhow::Result<Option<Preset>> {
    let presets = &version.presets;
    match named {
        Some("none") => Ok(None),
        Some(name) => presets
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                let known: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
                anyhow::anyhow!(
                    "{}@{} has no preset {name:?}; its presets: {}",
                    version.template_name,
                    version.name,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )
            }),
        None => Ok(presets.iter().find(|p| p.default).cloned()),
    }
}
