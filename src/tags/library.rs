//! The set of tags available to a model: the shipped `tags/` folder plus the user's own files.

use std::collections::BTreeMap;

use super::file::{Tag, TagKind};
use crate::error::{Error, Result};
use crate::model::{ModelIdentity, Segment, TextTokenizer};

/// Tags by name, each checked against the loaded model.
#[derive(Debug, Clone, Default)]
pub struct TagLibrary {
    tags: BTreeMap<String, Tag>,
}

impl TagLibrary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tag after checking it against `model`. A tag with the same name is replaced.
    pub fn insert(&mut self, tag: Tag, model: &ModelIdentity, file: &str) -> Result<()> {
        tag.check_model(model, file)?;
        self.tags.insert(tag.meta.name.clone(), tag);
        Ok(())
    }

    /// Parses a tag file's bytes, checks it and adds it; returns its name.
    pub fn add_bytes(&mut self, bytes: &[u8], file: &str, model: &ModelIdentity) -> Result<String> {
        let tag = Tag::from_bytes(bytes, file)?;
        let name = tag.meta.name.clone();
        self.insert(tag, model, file)?;
        Ok(name)
    }

    /// Loads every `*.safetensors` in `dir`. Files that fail are returned with their errors so
    /// that one bad file does not hide the good ones.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: &std::path::Path, model: &ModelIdentity) -> Result<(Self, Vec<Error>)> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::Usage(format!("cannot read the tag folder {}: {e} (pass --tags DIR)", dir.display()))
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        paths.sort();
        let mut lib = Self::new();
        let mut errors = Vec::new();
        for path in paths {
            let shown = path.display().to_string();
            match Tag::load(&path).and_then(|t| lib.insert(t, model, &shown)) {
                Ok(()) => {}
                Err(e) => errors.push(e),
            }
        }
        Ok((lib, errors))
    }

    pub fn get(&self, name: &str) -> Result<&Tag> {
        self.tags.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.tags.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "no tag named `{name}` (available: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.tags.values()
    }

    pub fn function_tags(&self) -> impl Iterator<Item = &Tag> {
        self.iter().filter(|t| t.meta.kind == TagKind::Function)
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Splits free text at every `<Name>` naming a loaded tag and splices that tag's vectors in;
    /// the rest is tokenised as usual (so `<|im_start|>` and unknown `<x>` stay text).
    pub fn splice(&self, text: &str, tokenizer: &TextTokenizer) -> Result<Vec<Segment>> {
        let mut segments = Vec::new();
        let mut pending = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let tag = after.find('>').and_then(|close| self.tags.get(&after[..close]).map(|t| (close, t)));
            match tag {
                Some((close, tag)) => {
                    pending.push_str(rest[..open].trim_end());
                    if !pending.is_empty() {
                        segments.push(Segment::Tokens(tokenizer.encode(&pending)?));
                        pending.clear();
                    }
                    segments.push(Segment::Vectors(tag.vectors.clone()));
                    rest = &after[close + 1..];
                }
                None => {
                    pending.push_str(&rest[..open + 1]);
                    rest = after;
                }
            }
        }
        pending.push_str(rest);
        if !pending.is_empty() {
            segments.push(Segment::Tokens(tokenizer.encode(&pending)?));
        }
        Ok(segments)
    }
}
