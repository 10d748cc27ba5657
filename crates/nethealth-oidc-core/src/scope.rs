//! Scopes, and what the user actually granted.
//!
//! On the Accounts site's consent page the user may untick scopes, so the grant can be narrower than the request.
//! [`GrantedScopes`] records both and says where the granted set came from.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A set of scope tokens, kept in a stable (sorted) order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// An empty set.
    pub fn new() -> Self {
        Scopes(BTreeSet::new())
    }

    /// Parses a space-separated scope string (RFC 6749 §3.3); extra whitespace is ignored.
    pub fn parse(text: &str) -> Self {
        Scopes(text.split_ascii_whitespace().map(str::to_owned).collect())
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: impl Into<String>) {
        self.0.insert(scope.into());
    }

    /// The scopes in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How many scopes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes of `self` that are not in `other`.
    pub fn difference(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.difference(&other.0).cloned().collect())
    }

    /// The scopes in both.
    pub fn intersection(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.intersection(&other.0).cloned().collect())
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }
}

impl fmt::Display for Scopes {
    /// The space-separated wire form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

impl<S: Into<String>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Scopes(iter.into_iter().map(Into::into).collect())
    }
}

/// Where the granted set came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScopeSource {
    /// The token response's `scope` field.
    TokenResponse,
    /// The JWT access token's `scope` claim (IdentityServer3 sends no `scope` field).
    AccessTokenClaim,
    /// Neither was present: RFC 6749 §5.1 says the grant then equals the request.
    AssumedFromRequest,
}

/// What was asked for and what was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedScopes {
    requested: Scopes,
    granted: Scopes,
    source: ScopeSource,
}

impl GrantedScopes {
    /// Records a grant.
    pub fn new(requested: Scopes, granted: Scopes, source: ScopeSource) -> Self {
        GrantedScopes {
            requested,
            granted,
            source,
        }
    }

    /// The scopes that were asked for.
    pub fn requested(&self) -> &Scopes {
        &self.requested
    }

    /// The scopes that were granted.
    pub fn granted(&self) -> &Scopes {
        &self.granted
    }

    /// The requested scopes that were not granted (the user unticked them, or the provider dropped them).
    pub fn refused(&self) -> Scopes {
        self.requested.difference(&self.granted)
    }

    /// Whether `scope` was granted and can be used.
    pub fn allows(&self, scope: &str) -> bool {
        self.granted.contains(scope)
    }

    /// Whether some requested scope was not granted.
    pub fn is_partial(&self) -> bool {
        !self.refused().is_empty()
    }

    /// Where the granted set came from.
    pub fn source(&self) -> ScopeSource {
        self.source
    }

    /// Narrows the grant after a refresh: the new grant never widens the original one.
    pub fn narrowed_to(&self, new_grant: &Scopes, source: ScopeSource) -> GrantedScopes {
        GrantedScopes {
            requested: self.requested.clone(),
            granted: self.granted.intersection(new_grant),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let s = Scopes::parse("  openid  profile\tpatients.read ");
        assert_eq!(s.len(), 3);
        assert_eq!(s.to_string(), "openid patients.read profile");
    }

    #[test]
    fn partial_grant() {
        let g = GrantedScopes::new(
            Scopes::parse("openid patients.read patients.write"),
            Scopes::parse("openid patients.read"),
            ScopeSource::TokenResponse,
        );
        assert!(g.is_partial());
        assert_eq!(g.refused(), Scopes::parse("patients.write"));
        assert!(g.allows("patients.read"));
        assert!(!g.allows("patients.write"));
        let narrowed = g.narrowed_to(
            &Scopes::parse("openid patients.read patients.write admin"),
            ScopeSource::TokenResponse,
        );
        assert_eq!(narrowed.granted(), &Scopes::parse("openid patients.read"));
    }
}
