//! The marker file `sandcron new` writes at a project's root: its name and
//! its contents (the project's name and language), which `build` reads.

use serde::{Deserialize, Serialize};

use super::lang::Lang;

/// The marker file `sandcron new` writes at a project's root.
pub const MARKER: &str = "sandcron.toml";

/// The marker file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The project's (and its plugin's) name.
    pub name: String,
    /// Its language.
    pub lang: Lang,
}

impl Marker {
    /// The marker as TOML, with a comment saying what it is for.
    pub fn to_toml(&self) -> String {
        format!(
            "# Written by `sandcron new`: `sandcron build` reads the language from here.\nname = {:?}\nlang = {:?}\n",
            self.name,
            self.lang.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_reads_back_what_it_wrote() {
        let marker = Marker {
            name: "nightly-report".to_string(),
            lang: Lang::Js,
        };
        assert_eq!(toml::from_str::<Marker>(&marker.to_toml()).expect("TOML"), marker);
    }
}
