//! SCIM filters (RFC 7644 §3.4.2.2): the text of a `filter` parameter is
//! parsed into an untyped [`Expr`], validated against the schema registry
//! into a typed [`Filter`] whose attribute references carry the store's
//! index keys, and evaluated against rendered resources by [`matches`], the
//! reference the SQL translation in `store::query` must agree with.
//!
//! The attribute-path grammar is reusable: [`parse_attr_path`] for `sortBy`
//! and [`parse_patch_path`] for PATCH paths (`emails[type eq "work"].value`).
//!
//! # Syntax
//!
//! The full ABNF: attribute paths (optionally URN-qualified, one
//! sub-attribute at most), `eq ne co sw ew gt ge lt le pr`, `and` (binding
//! tighter than `or`), `not (…)`, parentheses and value filters `attr[…]`.
//! Operators, keywords, literals and attribute names are case-insensitive;
//! values are JSON (`"…"` with JSON escapes, numbers, `true`, `false`,
//! `null`). A value filter may not be nested nor, in a filter, be followed by
//! a sub-attribute. Limits: [`MAX_FILTER_BYTES`], [`MAX_FILTER_DEPTH`]
//! nested `(…)`, `not (…)` or `[…]`, [`MAX_FILTER_COMPARISONS`] comparisons.
//! Error messages give 0-based character positions.
//!
//! # Semantics
//!
//! - Comparisons on an absent attribute are false. `ne` is `not eq`: true
//!   when the attribute is absent, and for a multi-valued attribute true iff
//!   no value equals.
//! - Every other comparison on a multi-valued attribute holds if ANY value
//!   satisfies it. `attr[f]` holds if ONE element satisfies all of `f`.
//! - `emails op v` on a multi-valued complex attribute with a `value`
//!   sub-attribute means `emails.value op v`.
//! - Strings that are not `caseExact` compare lowercased (`to_lowercase`)
//!   on both sides; `co`/`sw`/`ew` are substring, prefix and suffix tests;
//!   `gt`/`ge`/`lt`/`le` order strings byte-wise (code point order).
//! - Date-times compare as [`normalize_datetime`] strings (UTC, microseconds),
//!   which order as the instants do. Numbers compare as `f64`. Booleans and
//!   binaries admit `eq`/`ne` only; `schemas` admits `eq`, `ne` and `pr`.
//! - `pr`: the value exists and is not `null`, `""`, `[]` or `{}`; a complex
//!   attribute is present when one of its sub-attributes is, a multi-valued
//!   one when one of its elements is.
//! - `attr eq null` is parsed as `not (attr pr)` and `attr ne null` as
//!   `attr pr`: a value is either present or null.
//! - `meta[f]` is `f`: every resource has exactly one `meta`.
//! - Attributes a store does not keep for filtering are rejected: write-only
//!   and never-returned ones (`password`), `meta` as a whole, and read-only
//!   top-level attributes without a dedicated [`AttrSource`].
//! - Keys in the resource JSON are matched case-insensitively.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use super::resource::normalize_datetime;
use super::schema::{AttrType, Mutability, ResolvedAttr, Returned, SchemaRegistry};
use super::{ResourceKind, ScimError, ScimResult, ScimType};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// The deepest nesting of `(…)`, `not (…)` and `[…]` accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The most comparisons (`pr` included) one filter may hold.
pub const MAX_FILTER_COMPARISONS: usize = 200;

// ---------------------------------------------------------------------------
// The typed tree

/// A filter validated against a resource type's schemas.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrRef),
    Compare(AttrRef, CompareOp, Operand),
    /// `attr[filter]`: the inner filter's AttrRefs are sub-attributes of `attr`, and must match within ONE element.
    ValuePath(AttrRef, Box<Filter>),
    /// A test of an attribute the resource type does not define, in a search
    /// across types ([`validate_across`]): unassigned, so false.
    Undefined,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// The operator a keyword names, case-insensitively; `pr` is not one.
    pub fn from_keyword(word: &str) -> Option<Self> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter().find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// The value a comparison is against, typed by the attribute compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// Never produced by [`parse_filter`], which turns `eq null` into
    /// `not (… pr)` and `ne null` into `… pr`; evaluated the same way.
    Null,
    Bool(bool),
    /// Integers and decimals.
    Number(f64),
    /// Strings, references and binaries, as written (not lowercased).
    Text(String),
    /// Normalized by [`normalize_datetime`].
    DateTime(String),
}

/// A validated attribute reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrRef {
    /// Lowercase key as used by `index_values` / `ResolvedAttr::index_key()` ("emails.value", "name.familyname",
    /// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department", "id", "externalid", "meta.lastmodified", "members.value", "groups.value").
    pub key: String,
    /// The type of the leaf (`Complex` for `emails` in `emails pr` and value filters).
    pub attr_type: AttrType,
    pub case_exact: bool,
    /// True if the top-level attribute is multi-valued (emails, members, groups…).
    pub multi_valued: bool,
    pub source: AttrSource,
}

impl AttrRef {
    /// The lowercase URN of the extension the attribute lives under, if any.
    pub fn extension_urn(&self) -> Option<&str> {
        self.split_key().0
    }

    /// The lowercase top-level attribute name: `emails` in `emails.value`.
    pub fn attribute_name(&self) -> &str {
        self.split_key().1
    }

    /// The lowercase sub-attribute name: `value` in `emails.value`.
    pub fn sub_attribute_name(&self) -> Option<&str> {
        self.split_key().2
    }

    /// Attribute names contain neither `:` nor `.`, so the key splits
    /// unambiguously at its last colon and then at its dot.
    fn split_key(&self) -> (Option<&str>, &str, Option<&str>) {
        let (urn, dotted) = match self.key.rsplit_once(':') {
            Some((urn, dotted)) => (Some(urn), dotted),
            None => (None, self.key.as_str()),
        };
        match dotted.split_once('.') {
            Some((attr, sub)) => (urn, attr, Some(sub)),
            None => (urn, dotted, None),
        }
    }
}

/// Where a store finds an attribute's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrSource {
    Id,
    ExternalId,
    /// User `userName`.
    UserName,
    /// User and Group `displayName` (not the enterprise `manager.displayName`).
    DisplayName,
    MetaCreated,
    MetaLastModified,
    MetaResourceType,
    MetaLocation,
    MetaVersion,
    /// The `schemas` array.
    Schemas,
    /// Group `members` and its sub-attributes.
    Members,
    /// User `groups` and its sub-attributes.
    Groups,
    /// Everything else: the values `index_values` reports under `key`.
    Indexed,
}

/// Where filters and sorts read a top-level core or common attribute that
/// the store keeps in a column of its own. As they read the column,
/// [`crate::scim::resource::index_values`] indexes no values for it: doing
/// so cost every create and replace index entries that nothing read.
pub fn column_source(kind: ResourceKind, name: &str) -> Option<AttrSource> {
    match (kind, name) {
        (_, "externalId") => Some(AttrSource::ExternalId),
        (ResourceKind::User, "userName") => Some(AttrSource::UserName),
        (_, "displayName") => Some(AttrSource::DisplayName),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The untyped tree

/// An attribute path as written: `[URN ":"] name ["." subAttr]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN, as written, without the trailing colon.
    pub urn: Option<String>,
    pub name: String,
    pub sub_attr: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison value as written.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => write!(f, "{}", Value::String(s.clone())),
        }
    }
}

/// A parsed filter, before validation. `pos` is the 0-based character
/// position of the attribute path, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Present {
        path: AttrPath,
        pos: usize,
    },
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
        pos: usize,
    },
    ValuePath {
        path: AttrPath,
        filter: Box<Expr>,
        pos: usize,
    },
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `attrPath` or
/// `valuePath [subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    /// The value filter in `attr[…]`.
    pub filter: Option<Expr>,
    /// The sub-attribute after `]`: `value` in `emails[type eq "work"].value`.
    pub sub_attr: Option<String>,
}

// ---------------------------------------------------------------------------
// Public entry points

/// Parses and validates a `filter` parameter for resources of `kind`.
pub fn parse_filter(reg: &SchemaRegistry, kind: ResourceKind, text: &str) -> ScimResult<Filter> {
    validate(reg, kind, &parse_expression(text)?)
}

/// Parses a filter without looking at schemas.
pub fn parse_expression(text: &str) -> ScimResult<Expr> {
    parse_filter_text(text).map_err(invalid_filter)
}

/// Validates a parsed filter against the schemas of `kind`.
pub fn validate(reg: &SchemaRegistry, kind: ResourceKind, expr: &Expr) -> ScimResult<Filter> {
    Validator::new(reg, kind).expr(expr, None)
}

/// Validates the filter of a search across resource types (root `/.search`),
/// one filter per kind. An attribute one type does not define is unassigned
/// in its resources, so a test of it is false there ([`Filter::Undefined`]),
/// as on any absent attribute: `userName eq "x" or displayName eq "y"` finds
/// groups by name. An attribute no type defines is still an error.
pub fn validate_across(reg: &SchemaRegistry, kinds: &[ResourceKind], expr: &Expr) -> ScimResult<Vec<Filter>> {
    if let Some((path, pos)) = top_level_paths(expr)
        .into_iter()
        .find(|(path, _)| kinds.iter().all(|k| reg.resolve_path(*k, &path.to_string()).is_none()))
    {
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        return Err(invalid_filter(format!(
            "unknown attribute \"{path}\" at position {pos} for {} resources",
            names.join(" and ")
        )));
    }
    kinds
        .iter()
        .map(|&kind| {
            Validator {
                undefined_is_false: true,
                ..Validator::new(reg, kind)
            }
            .expr(expr, None)
        })
        .collect()
}

/// The attribute paths a filter tests outside value filters, with positions.
fn top_level_paths(expr: &Expr) -> Vec<(&AttrPath, usize)> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            let mut paths = top_level_paths(a);
            paths.extend(top_level_paths(b));
            paths
        }
        Expr::Not(inner) => top_level_paths(inner),
        Expr::Present { path, pos } | Expr::Compare { path, pos, .. } | Expr::ValuePath { path, pos, .. } => {
            vec![(path, *pos)]
        }
    }
}

/// Validates `path[inner]` (as a PATCH path carries it) into a
/// [`Filter::ValuePath`], to select elements with [`matches_element`].
pub fn validate_value_path(
    reg: &SchemaRegistry,
    kind: ResourceKind,
    path: &AttrPath,
    inner: &Expr,
) -> ScimResult<Filter> {
    Validator::new(reg, kind).value_path(path, inner, 0)
}

/// Resolves an attribute path to a reference, as `sortBy` needs; errors are
/// `invalidFilter`.
pub fn attr_ref(reg: &SchemaRegistry, kind: ResourceKind, path: &AttrPath) -> ScimResult<AttrRef> {
    let v = Validator::new(reg, kind);
    let resolved = v.resolve(path, 0, None)?;
    v.attr_ref(&resolved, path, 0)
}

/// Parses a bare attribute path (`name.familyName`, `urn:…:User:manager.value`);
/// errors are `invalidPath`. A bare schema URN parses as a URN-qualified
/// name, so callers that accept one should test for it first.
pub fn parse_attr_path(text: &str) -> ScimResult<AttrPath> {
    split_attr_path(text).map_err(|reason| {
        ScimError::bad_request(
            ScimType::InvalidPath,
            format!("invalid attribute path \"{text}\": {reason}"),
        )
    })
}

/// Parses a PATCH path; every error, the value filter's included, is
/// `invalidPath`.
pub fn parse_patch_path(text: &str) -> ScimResult<PatchPath> {
    parse_patch_text(text).map_err(|detail| ScimError::bad_request(ScimType::InvalidPath, detail))
}

/// Whether a rendered resource satisfies `filter`.
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    eval(filter, Scope::Resource(resource))
}

/// Whether one element of a multi-valued complex attribute satisfies the
/// inner filter of a [`Filter::ValuePath`] (or the whole value path).
pub fn matches_element(filter: &Filter, element: &Value) -> bool {
    match filter {
        Filter::ValuePath(_, inner) => eval(inner, Scope::Element(element)),
        other => eval(other, Scope::Element(element)),
    }
}

fn invalid_filter(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidFilter, detail)
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    /// A run of characters other than white space, `()[]` and `"`: an
    /// attribute path, an operator, a keyword, a literal or a number.
    Word(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 0-based character position.
    pos: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::LBracket => "\"[\"".into(),
        Tok::RBracket => "\"]\"".into(),
        Tok::Str(s) => format!("string {}", Value::String(s.clone())),
        Tok::Word(w) => format!("\"{w}\""),
    }
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | '"')
}

/// Splits `text` into tokens; returns them with the length in characters.
fn lex(text: &str) -> Result<(Vec<Token>, usize), String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().enumerate().peekable();
    let mut length = 0;
    while let Some((pos, (start, c))) = chars.next() {
        length = pos + 1;
        let tok = match c {
            c if c.is_whitespace() => continue,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '"' => {
                let mut escaped = false;
                let mut end = None;
                for (p, (byte, c)) in chars.by_ref() {
                    length = p + 1;
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(byte);
                        break;
                    }
                }
                let raw = end
                    .and_then(|end| text.get(start..=end))
                    .ok_or_else(|| format!("unterminated string starting at position {pos}"))?;
                let s: String = serde_json::from_str(raw).map_err(|_| {
                    format!(
                        "invalid string at position {pos}: strings are JSON strings, with escapes such as \\\" \\\\ \\n \
                         \\u00e9 and no raw control characters"
                    )
                })?;
                Tok::Str(s)
            }
            _ => {
                let mut end = start + c.len_utf8();
                while let Some(&(p, (byte, c))) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    end = byte + c.len_utf8();
                    length = p + 1;
                    chars.next();
                }
                Tok::Word(text.get(start..end).unwrap_or_default().to_string())
            }
        };
        tokens.push(Token { tok, pos });
    }
    Ok((tokens, length))
}

// ---------------------------------------------------------------------------
// Attribute paths

/// `[URN ":"] ATTRNAME ["." ATTRNAME]`; the URN is everything up to the
/// last colon (URNs hold colons and dots: `…:enterprise:2.0:User:manager.value`).
fn split_attr_path(text: &str) -> Result<AttrPath, String> {
    let is_urn = text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (urn, rest) = if is_urn {
        match text.rsplit_once(':') {
            Some((urn, rest)) if urn.len() > 4 && !rest.is_empty() => (Some(urn.to_string()), rest),
            _ => return Err("an attribute name must follow the schema URN".into()),
        }
    } else {
        (None, text)
    };
    let mut parts = rest.split('.');
    let name = parts.next().unwrap_or_default();
    let sub_attr = parts.next();
    if parts.next().is_some() {
        return Err("at most one sub-attribute may follow an attribute".into());
    }
    check_attr_name(name)?;
    if let Some(sub) = sub_attr {
        check_attr_name(sub)?;
    }
    Ok(AttrPath {
        urn,
        name: name.to_string(),
        sub_attr: sub_attr.map(str::to_string),
    })
}

/// RFC 7643 §2.1: `ALPHA *(ALPHA / DIGIT / "-" / "_")`, plus `$ref`.
fn check_attr_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an attribute name is empty".into());
    }
    let mut chars = name.chars();
    let valid = name.eq_ignore_ascii_case("$ref")
        || (chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if valid {
        Ok(())
    } else {
        Err(format!("\"{name}\" is not a valid attribute name"))
    }
}

// ---------------------------------------------------------------------------
// Parser

fn check_length(text: &str) -> Result<(), String> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(format!(
            "the filter is too long: {} bytes, at most {MAX_FILTER_BYTES}",
            text.len()
        ));
    }
    Ok(())
}

fn parse_filter_text(text: &str) -> Result<Expr, String> {
    check_length(text)?;
    let mut parser = Parser::new(text, false)?;
    if parser.tokens.is_empty() {
        return Err("the filter is empty".into());
    }
    let expr = parser.or_expr()?;
    match parser.bump() {
        None => Ok(expr),
        Some(tok) => Err(format!(
            "unexpected token {} at position {}; expected \"and\", \"or\" or the end of the filter",
            describe(&tok.tok),
            tok.pos
        )),
    }
}

fn parse_patch_text(text: &str) -> Result<PatchPath, String> {
    check_length(text)?;
    let mut parser = Parser::new(text, true)?;
    let (word, pos) = match parser.bump() {
        None => return Err("the path is empty".into()),
        Some(Token { tok: Tok::Word(w), pos }) => (w, pos),
        Some(tok) => {
            return Err(format!(
                "unexpected token {} at position {}; expected an attribute path",
                describe(&tok.tok),
                tok.pos
            ));
        }
    };
    let attr = parser.attr_path(&word, pos)?;
    let mut path = PatchPath {
        attr,
        filter: None,
        sub_attr: None,
    };
    if let Some(open) = parser.eat(&Tok::LBracket) {
        path.filter = Some(parser.value_filter(&path.attr, open)?);
        if let Some(Token { tok: Tok::Word(w), pos }) = parser.peek().cloned()
            && let Some(sub) = w.strip_prefix('.')
        {
            parser.bump();
            check_attr_name(sub)
                .map_err(|reason| format!("invalid sub-attribute \"{w}\" at position {pos}: {reason}"))?;
            path.sub_attr = Some(sub.to_string());
        }
    }
    match parser.bump() {
        None => Ok(path),
        Some(tok) => Err(format!(
            "unexpected token {} at position {}; expected the end of the path",
            describe(&tok.tok),
            tok.pos
        )),
    }
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    /// The length of the text in characters: the position of "the end".
    end: usize,
    depth: usize,
    comparisons: usize,
    in_value_filter: bool,
    /// Whether a sub-attribute may follow `]` (PATCH paths).
    patch: bool,
}

impl Parser {
    fn new(text: &str, patch: bool) -> Result<Self, String> {
        let (tokens, end) = lex(text)?;
        Ok(Parser {
            tokens,
            next: 0,
            end,
            depth: 0,
            comparisons: 0,
            in_value_filter: false,
            patch,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<Token> {
        let tok = self.tokens.get(self.next).cloned();
        if tok.is_some() {
            self.next += 1;
        }
        tok
    }

    /// Consumes the next token if it is `tok`; returns its position.
    fn eat(&mut self, tok: &Tok) -> Option<usize> {
        let pos = self.peek().filter(|t| &t.tok == tok)?.pos;
        self.next += 1;
        Some(pos)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(keyword));
        if found {
            self.next += 1;
        }
        found
    }

    fn enter(&mut self, pos: usize) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(format!(
                "the filter is too deep: more than {MAX_FILTER_DEPTH} nested \"(\", \"not (\" or \"[\" (at position {pos})"
            ));
        }
        Ok(())
    }

    /// Consumes the token closing the group opened at `open`.
    fn close(&mut self, closing: Tok, open: usize) -> Result<(), String> {
        let (opening, shown) = match closing {
            Tok::RBracket => ("[", "]"),
            _ => ("(", ")"),
        };
        self.depth = self.depth.saturating_sub(1);
        match self.bump() {
            Some(t) if t.tok == closing => Ok(()),
            None => Err(format!(
                "missing \"{shown}\" at position {} to close the \"{opening}\" at position {open}",
                self.end
            )),
            Some(t) => Err(format!(
                "unexpected token {} at position {}; expected \"and\", \"or\" or \"{shown}\" to close the \"{opening}\" \
                 at position {open}",
                describe(&t.tok),
                t.pos
            )),
        }
    }

    fn count_comparison(&mut self) -> Result<(), String> {
        self.comparisons += 1;
        if self.comparisons > MAX_FILTER_COMPARISONS {
            return Err(format!(
                "the filter is too complex: more than {MAX_FILTER_COMPARISONS} comparisons"
            ));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("or") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while self.eat_keyword("and") {
            let right = self.term()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        const EXPECTED: &str = "expected an attribute path, \"(\" or \"not\"";
        let Some(Token { tok, pos }) = self.bump() else {
            return Err(format!(
                "unexpected end of the filter at position {}; {EXPECTED}",
                self.end
            ));
        };
        match tok {
            Tok::LParen => {
                self.enter(pos)?;
                let inner = self.or_expr()?;
                self.close(Tok::RParen, pos)?;
                Ok(inner)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") => {
                Err(format!("unexpected token \"{w}\" at position {pos}; {EXPECTED}"))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                let Some(open) = self.eat(&Tok::LParen) else {
                    return Err(format!("\"{w}\" at position {pos} must be followed by \"(\""));
                };
                self.enter(open)?;
                let inner = self.or_expr()?;
                self.close(Tok::RParen, open)?;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::Word(w) => self.attr_expr(&w, pos),
            other => Err(format!(
                "unexpected token {} at position {pos}; {EXPECTED}",
                describe(&other)
            )),
        }
    }

    fn attr_path(&self, word: &str, pos: usize) -> Result<AttrPath, String> {
        split_attr_path(word).map_err(|reason| format!("invalid attribute path \"{word}\" at position {pos}: {reason}"))
    }

    /// `attrPath "pr"`, `attrPath compareOp compValue` or `attrPath "[" valFilter "]"`.
    fn attr_expr(&mut self, word: &str, pos: usize) -> Result<Expr, String> {
        let path = self.attr_path(word, pos)?;
        if let Some(open) = self.eat(&Tok::LBracket) {
            let filter = self.value_filter(&path, open)?;
            if !self.patch
                && let Some(Token { tok: Tok::Word(w), pos }) = self.peek()
                && w.starts_with('.')
            {
                return Err(format!(
                    "a value filter cannot be followed by a sub-attribute in a filter (\"{w}\" at position {pos}); \
                     that form is for PATCH paths"
                ));
            }
            return Ok(Expr::ValuePath {
                path,
                filter: Box::new(filter),
                pos,
            });
        }
        const OPERATORS: &str = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)";
        let (op_word, op_pos) = match self.bump() {
            Some(Token { tok: Tok::Word(w), pos }) => (w, pos),
            None => {
                return Err(format!(
                    "missing operator after \"{word}\" at position {}; expected {OPERATORS}",
                    self.end
                ));
            }
            Some(t) => {
                return Err(format!(
                    "unexpected token {} at position {}; expected {OPERATORS}",
                    describe(&t.tok),
                    t.pos
                ));
            }
        };
        if op_word.eq_ignore_ascii_case("pr") {
            self.count_comparison()?;
            let value_follows = match self.peek().map(|t| &t.tok) {
                Some(Tok::Str(_)) => true,
                Some(Tok::Word(w)) => literal(w).is_some(),
                _ => false,
            };
            if value_follows {
                return Err(format!("\"{op_word}\" at position {op_pos} takes no value"));
            }
            return Ok(Expr::Present { path, pos });
        }
        let Some(op) = CompareOp::from_keyword(&op_word) else {
            return Err(format!(
                "unexpected token \"{op_word}\" at position {op_pos}; expected {OPERATORS}"
            ));
        };
        let value = match self.bump() {
            Some(Token { tok: Tok::Str(s), .. }) => CompValue::String(s),
            Some(Token { tok: Tok::Word(w), pos }) => match literal(&w) {
                Some(Ok(value)) => value,
                Some(Err(())) => return Err(format!("the number \"{w}\" at position {pos} is out of range")),
                None => {
                    return Err(format!(
                        "invalid value \"{w}\" at position {pos}; expected a string in double quotes, a number, \
                         true, false or null"
                    ));
                }
            },
            None => return Err(format!("missing value after \"{op_word}\" at position {}", self.end)),
            Some(t) => {
                return Err(format!(
                    "missing value after \"{op_word}\": found {} at position {}",
                    describe(&t.tok),
                    t.pos
                ));
            }
        };
        self.count_comparison()?;
        Ok(Expr::Compare { path, op, value, pos })
    }

    /// The inside of `path[…]`, the `[` at `open` already consumed.
    fn value_filter(&mut self, path: &AttrPath, open: usize) -> Result<Expr, String> {
        if self.in_value_filter {
            return Err(format!(
                "a value filter cannot be nested in another (\"[\" at position {open})"
            ));
        }
        if path.sub_attr.is_some() {
            return Err(format!(
                "a value filter applies to an attribute, not to the sub-attribute \"{path}\" (\"[\" at position {open})"
            ));
        }
        self.enter(open)?;
        self.in_value_filter = true;
        let filter = self.or_expr()?;
        self.in_value_filter = false;
        self.close(Tok::RBracket, open)?;
        Ok(filter)
    }
}

/// `true`, `false`, `null` (case-insensitively, as ABNF strings are) or a
/// JSON number; `Some(Err)` for a number outside `f64`.
fn literal(word: &str) -> Option<Result<CompValue, ()>> {
    if word.eq_ignore_ascii_case("true") {
        return Some(Ok(CompValue::Bool(true)));
    }
    if word.eq_ignore_ascii_case("false") {
        return Some(Ok(CompValue::Bool(false)));
    }
    if word.eq_ignore_ascii_case("null") {
        return Some(Ok(CompValue::Null));
    }
    if !is_json_number(word) {
        return None;
    }
    Some(
        word.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(CompValue::Number)
            .ok_or(()),
    )
}

/// RFC 8259 §6: `-? (0 / [1-9] DIGIT*) ("." DIGIT+)? ([eE] [+-]? DIGIT+)?`.
fn is_json_number(word: &str) -> bool {
    let bytes = word.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == bytes.len()
}

// ---------------------------------------------------------------------------
// Validation

struct Validator<'r> {
    reg: &'r SchemaRegistry,
    kind: ResourceKind,
    /// A test of an attribute `kind` does not define is [`Filter::Undefined`]
    /// rather than an error (searches across types).
    undefined_is_false: bool,
}

impl<'r> Validator<'r> {
    /// A validator for which every attribute named must be defined.
    fn new(reg: &'r SchemaRegistry, kind: ResourceKind) -> Self {
        Validator {
            reg,
            kind,
            undefined_is_false: false,
        }
    }

    /// `outer` is the attribute of the enclosing value filter, if any.
    fn expr(&self, expr: &Expr, outer: Option<&AttrPath>) -> ScimResult<Filter> {
        if let Expr::Present { path, .. } | Expr::Compare { path, .. } | Expr::ValuePath { path, .. } = expr
            && self.undefined_is_false
            && outer.is_none()
            && self.reg.resolve_path(self.kind, &path.to_string()).is_none()
        {
            return Ok(Filter::Undefined);
        }
        Ok(match expr {
            Expr::And(a, b) => Filter::And(Box::new(self.expr(a, outer)?), Box::new(self.expr(b, outer)?)),
            Expr::Or(a, b) => Filter::Or(Box::new(self.expr(a, outer)?), Box::new(self.expr(b, outer)?)),
            Expr::Not(inner) => Filter::Not(Box::new(self.expr(inner, outer)?)),
            Expr::Present { path, pos } => {
                let resolved = self.resolve(path, *pos, outer)?;
                Filter::Present(self.attr_ref(&resolved, path, *pos)?)
            }
            Expr::Compare { path, op, value, pos } => self.compare(path, *op, value, *pos, outer)?,
            Expr::ValuePath { path, filter, pos } => match outer {
                Some(outer) => {
                    return Err(invalid_filter(format!(
                        "a value filter cannot be nested in another: \"{path}[…]\" inside \"{outer}[…]\" at position {pos}"
                    )));
                }
                None => self.value_path(path, filter, *pos)?,
            },
        })
    }

    /// Resolves `path`, relative to `outer` inside a value filter.
    fn resolve(&self, path: &AttrPath, pos: usize, outer: Option<&AttrPath>) -> ScimResult<ResolvedAttr<'r>> {
        let full = match outer {
            None => path.clone(),
            Some(outer) => {
                if path.urn.is_some() || path.sub_attr.is_some() {
                    return Err(invalid_filter(format!(
                        "\"{path}\" at position {pos} must name a sub-attribute of \"{outer}\", such as \"value\""
                    )));
                }
                AttrPath {
                    sub_attr: Some(path.name.clone()),
                    ..outer.clone()
                }
            }
        };
        self.reg.resolve_path(self.kind, &full.to_string()).ok_or_else(|| {
            let of = outer.map(|o| format!(" of \"{o}\"")).unwrap_or_default();
            invalid_filter(format!(
                "unknown attribute \"{path}\"{of} at position {pos} for {} resources",
                self.kind.name()
            ))
        })
    }

    fn source(&self, r: &ResolvedAttr<'_>) -> Option<AttrSource> {
        let top = r.attribute.name.as_str();
        let sub = r.sub_attribute.map(|s| s.name.as_str());
        if r.schema_urn.is_none() {
            if let Some(column) = column_source(self.kind, top) {
                return Some(column);
            }
            return match (top, sub) {
                ("id", _) => Some(AttrSource::Id),
                ("schemas", _) => Some(AttrSource::Schemas),
                ("meta", Some("created")) => Some(AttrSource::MetaCreated),
                ("meta", Some("lastModified")) => Some(AttrSource::MetaLastModified),
                ("meta", Some("resourceType")) => Some(AttrSource::MetaResourceType),
                ("meta", Some("location")) => Some(AttrSource::MetaLocation),
                ("meta", Some("version")) => Some(AttrSource::MetaVersion),
                ("meta", _) => None,
                _ => Some(AttrSource::Indexed),
            };
        }
        if r.extension {
            return Some(AttrSource::Indexed);
        }
        if let Some(column) = column_source(self.kind, top) {
            return Some(column);
        }
        Some(match (self.kind, top) {
            (ResourceKind::Group, "members") => AttrSource::Members,
            (ResourceKind::User, "groups") => AttrSource::Groups,
            _ => AttrSource::Indexed,
        })
    }

    fn attr_ref(&self, r: &ResolvedAttr<'_>, shown: &AttrPath, pos: usize) -> ScimResult<AttrRef> {
        let (top, leaf) = (r.attribute, r.leaf());
        let hidden = [top, leaf]
            .iter()
            .any(|d| d.mutability == Mutability::WriteOnly || d.returned == Returned::Never);
        if hidden {
            return Err(invalid_filter(format!(
                "attribute \"{shown}\" at position {pos} is never returned and cannot be filtered on"
            )));
        }
        let source = self.source(r).ok_or_else(|| {
            invalid_filter(format!(
                "\"{shown}\" at position {pos} is always present; filter on one of its sub-attributes, such as \
                 meta.lastModified"
            ))
        })?;
        if source == AttrSource::Indexed && top.mutability == Mutability::ReadOnly {
            return Err(invalid_filter(format!(
                "attribute \"{shown}\" at position {pos} cannot be filtered on"
            )));
        }
        Ok(AttrRef {
            key: r.index_key(),
            attr_type: leaf.attr_type,
            case_exact: leaf.case_exact,
            multi_valued: top.multi_valued,
            source,
        })
    }

    fn compare(
        &self,
        path: &AttrPath,
        op: CompareOp,
        value: &CompValue,
        pos: usize,
        outer: Option<&AttrPath>,
    ) -> ScimResult<Filter> {
        let mut resolved = self.resolve(path, pos, outer)?;
        if *value == CompValue::Null {
            let attr = self.attr_ref(&resolved, path, pos)?;
            return match op {
                CompareOp::Eq => Ok(Filter::Not(Box::new(Filter::Present(attr)))),
                CompareOp::Ne => Ok(Filter::Present(attr)),
                _ => Err(invalid_filter(format!(
                    "null at position {pos} can only be compared with eq or ne, not {}",
                    op.as_str()
                ))),
            };
        }
        if resolved.leaf().is_complex() {
            // RFC 7644 §3.4.2.2: `emails co "x"` compares `emails.value`.
            let value_sub = Some(resolved.attribute)
                .filter(|a| a.multi_valued)
                .and_then(|a| a.sub_attribute("value"));
            match value_sub {
                Some(sub) => resolved.sub_attribute = Some(sub),
                None => {
                    return Err(invalid_filter(format!(
                        "\"{path}\" at position {pos} is a complex attribute; compare one of its sub-attributes, \
                         such as \"{path}.{}\"",
                        resolved
                            .attribute
                            .sub_attributes
                            .first()
                            .map(|s| s.name.as_str())
                            .unwrap_or("value")
                    )));
                }
            }
        }
        let attr = self.attr_ref(&resolved, path, pos)?;
        let ty = attr.attr_type;
        let op_fits = match ty {
            _ if attr.source == AttrSource::Schemas => matches!(op, CompareOp::Eq | CompareOp::Ne),
            AttrType::String | AttrType::Reference => true,
            AttrType::Boolean | AttrType::Binary => matches!(op, CompareOp::Eq | CompareOp::Ne),
            AttrType::Integer | AttrType::Decimal | AttrType::DateTime => !op.is_substring(),
            AttrType::Complex => false,
        };
        if !op_fits {
            return Err(invalid_filter(format!(
                "operator \"{}\" does not apply to \"{path}\" at position {pos}, a {} attribute",
                op.as_str(),
                ty.as_str()
            )));
        }
        let wrong = |expected: &str| {
            invalid_filter(format!(
                "\"{path}\" at position {pos} is a {} attribute; compare it with {expected}, not {value}",
                ty.as_str()
            ))
        };
        let operand = match (ty, value) {
            (AttrType::String | AttrType::Reference | AttrType::Binary, CompValue::String(s)) => {
                Operand::Text(s.clone())
            }
            (AttrType::String | AttrType::Reference | AttrType::Binary, _) => {
                return Err(wrong("a string in double quotes"));
            }
            (AttrType::Boolean, CompValue::Bool(b)) => Operand::Bool(*b),
            // Entra ID sends booleans as "True" / "False".
            (AttrType::Boolean, CompValue::String(s)) if s.eq_ignore_ascii_case("true") => Operand::Bool(true),
            (AttrType::Boolean, CompValue::String(s)) if s.eq_ignore_ascii_case("false") => Operand::Bool(false),
            (AttrType::Boolean, _) => return Err(wrong("true or false")),
            (AttrType::Integer | AttrType::Decimal, CompValue::Number(n)) => Operand::Number(*n),
            (AttrType::Integer | AttrType::Decimal, _) => return Err(wrong("a number")),
            (AttrType::DateTime, CompValue::String(s)) => match normalize_datetime(s) {
                Some(normalized) => Operand::DateTime(normalized),
                None => return Err(wrong("a date-time string such as \"2011-05-13T04:42:34Z\"")),
            },
            (AttrType::DateTime, _) => return Err(wrong("a date-time string such as \"2011-05-13T04:42:34Z\"")),
            (AttrType::Complex, _) => return Err(wrong("nothing")),
        };
        Ok(Filter::Compare(attr, op, operand))
    }

    fn value_path(&self, path: &AttrPath, inner: &Expr, pos: usize) -> ScimResult<Filter> {
        let resolved = self.resolve(path, pos, None)?;
        if resolved.sub_attribute.is_some() || !resolved.attribute.is_complex() {
            return Err(invalid_filter(format!(
                "\"{path}\" at position {pos} is not a complex attribute, so it cannot take a value filter \"[…]\""
            )));
        }
        let outer = AttrPath {
            sub_attr: None,
            ..path.clone()
        };
        let inner = self.expr(inner, Some(&outer))?;
        if resolved.schema_urn.is_none() && resolved.attribute.name == "meta" {
            return Ok(inner);
        }
        let attr = self.attr_ref(&resolved, path, pos)?;
        Ok(Filter::ValuePath(attr, Box::new(inner)))
    }
}

// ---------------------------------------------------------------------------
// Reference evaluator

#[derive(Clone, Copy)]
enum Scope<'v> {
    /// A whole resource.
    Resource(&'v Value),
    /// One element of a complex attribute, inside `attr[…]`.
    Element(&'v Value),
}

fn eval(filter: &Filter, scope: Scope<'_>) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, scope) && eval(b, scope),
        Filter::Or(a, b) => eval(a, scope) || eval(b, scope),
        Filter::Not(inner) => !eval(inner, scope),
        Filter::Present(attr) => present(attr, scope),
        Filter::Compare(attr, op, Operand::Null) => match op {
            CompareOp::Eq => !present(attr, scope),
            CompareOp::Ne => present(attr, scope),
            _ => false,
        },
        Filter::Compare(attr, CompareOp::Ne, operand) => !values(attr, scope)
            .into_iter()
            .any(|v| compare(attr, CompareOp::Eq, operand, v)),
        Filter::Compare(attr, op, operand) => values(attr, scope).into_iter().any(|v| compare(attr, *op, operand, v)),
        Filter::ValuePath(attr, inner) => values(attr, scope)
            .into_iter()
            .filter(|e| e.is_object())
            .any(|e| eval(inner, Scope::Element(e))),
        Filter::Undefined => false,
    }
}

/// The non-null values `attr` reaches in `scope`, arrays flattened.
fn values<'v>(attr: &AttrRef, scope: Scope<'v>) -> Vec<&'v Value> {
    let mut out = Vec::new();
    match scope {
        Scope::Resource(root) => {
            let container = match attr.extension_urn() {
                Some(urn) => get_ci(root, urn),
                None => Some(root),
            };
            let Some(top) = container.and_then(|c| get_ci(c, attr.attribute_name())) else {
                return out;
            };
            match attr.sub_attribute_name() {
                Some(sub) => {
                    for element in items(top) {
                        out.extend(get_ci(element, sub).map(items).unwrap_or_default());
                    }
                }
                None => out.extend(items(top)),
            }
        }
        Scope::Element(element) => match attr.sub_attribute_name() {
            Some(sub) => out.extend(get_ci(element, sub).map(items).unwrap_or_default()),
            None => out.push(element),
        },
    }
    out.retain(|v| !v.is_null());
    out
}

fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        single => std::slice::from_ref(single),
    }
}

fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    super::json::get_ci(value.as_object()?, key)
}

fn present(attr: &AttrRef, scope: Scope<'_>) -> bool {
    values(attr, scope).into_iter().any(|v| match attr.attr_type {
        AttrType::Complex => non_empty(v),
        _ => scalar(attr, v).is_some_and(|s| !matches!(s, Scalar::Text(t) if t.is_empty())),
    })
}

fn non_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(non_empty),
        Value::Object(map) => map.values().any(non_empty),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// A resource value read as the attribute's type, as a store indexes it.
enum Scalar<'v> {
    Text(&'v str),
    Bool(bool),
    Number(f64),
    DateTime(String),
}

fn scalar<'v>(attr: &AttrRef, value: &'v Value) -> Option<Scalar<'v>> {
    match attr.attr_type {
        AttrType::String | AttrType::Reference | AttrType::Binary => value.as_str().map(Scalar::Text),
        AttrType::Boolean => value.as_bool().map(Scalar::Bool),
        AttrType::Integer | AttrType::Decimal => value.as_f64().map(Scalar::Number),
        AttrType::DateTime => normalize_datetime(value.as_str()?).map(Scalar::DateTime),
        AttrType::Complex => None,
    }
}

fn compare(attr: &AttrRef, op: CompareOp, operand: &Operand, value: &Value) -> bool {
    match (operand, scalar(attr, value)) {
        (Operand::Text(want), Some(Scalar::Text(have))) if attr.case_exact => compare_text(op, have, want),
        (Operand::Text(want), Some(Scalar::Text(have))) => compare_text(op, &have.to_lowercase(), &want.to_lowercase()),
        (Operand::Bool(want), Some(Scalar::Bool(have))) => match op {
            CompareOp::Eq => have == *want,
            CompareOp::Ne => have != *want,
            _ => false,
        },
        (Operand::Number(want), Some(Scalar::Number(have))) => {
            !op.is_substring() && have.partial_cmp(want).is_some_and(|o| ordered(op, o))
        }
        (Operand::DateTime(want), Some(Scalar::DateTime(have))) => {
            !op.is_substring() && ordered(op, have.as_str().cmp(want.as_str()))
        }
        _ => false,
    }
}

fn compare_text(op: CompareOp, have: &str, want: &str) -> bool {
    match op {
        CompareOp::Co => have.contains(want),
        CompareOp::Sw => have.starts_with(want),
        CompareOp::Ew => have.ends_with(want),
        _ => ordered(op, have.cmp(want)),
    }
}

/// Whether `have.cmp(want) == ordering` satisfies `op` (`co`/`sw`/`ew`: false).
fn ordered(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::ENTERPRISE_USER_SCHEMA;

    const USER: ResourceKind = ResourceKind::User;
    const GROUP: ResourceKind = ResourceKind::Group;
    const DEPARTMENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";

    fn reg() -> &'static SchemaRegistry {
        SchemaRegistry::builtin()
    }

    fn parse(text: &str) -> Filter {
        parse_filter(reg(), USER, text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parse_group(text: &str) -> Filter {
        parse_filter(reg(), GROUP, text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The error of an invalid filter, checked to be 400 `invalidFilter`.
    fn rejected(text: &str) -> String {
        let err = parse_filter(reg(), USER, text).expect_err(text);
        assert_eq!(
            (err.status, err.scim_type),
            (400, Some(ScimType::InvalidFilter)),
            "{text}"
        );
        err.detail
    }

    fn assert_rejected(text: &str, needle: &str) {
        let detail = rejected(text);
        assert!(detail.contains(needle), "{text}: {detail:?} lacks {needle:?}");
    }

    /// A compact rendering of a filter's shape: keys, operators, operands.
    fn shape(filter: &Filter) -> String {
        match filter {
            Filter::And(a, b) => format!("({} and {})", shape(a), shape(b)),
            Filter::Or(a, b) => format!("({} or {})", shape(a), shape(b)),
            Filter::Not(inner) => format!("not {}", shape(inner)),
            Filter::Present(attr) => format!("{} pr", attr.key),
            Filter::Compare(attr, op, operand) => format!("{} {} {operand:?}", attr.key, op.as_str()),
            Filter::ValuePath(attr, inner) => format!("{}[{}]", attr.key, shape(inner)),
            Filter::Undefined => "undefined".into(),
        }
    }

    fn first_ref(filter: &Filter) -> &AttrRef {
        match filter {
            Filter::Present(attr) | Filter::Compare(attr, _, _) | Filter::ValuePath(attr, _) => attr,
            Filter::And(a, _) | Filter::Or(a, _) | Filter::Not(a) => first_ref(a),
            Filter::Undefined => panic!("no attribute in an undefined test"),
        }
    }

    /// RFC 7643 §8.2's full user with meta, plus the §8.3 enterprise data.
    fn rfc_user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "701984",
            "userName": "bjensen@example.com",
            "name": {
                "formatted": "Ms. Barbara J Jensen, III",
                "familyName": "Jensen",
                "givenName": "Barbara",
                "middleName": "Jane",
                "honorificPrefix": "Ms.",
                "honorificSuffix": "III"
            },
            "displayName": "Babs Jensen",
            "nickName": "Babs",
            "profileUrl": "https://login.example.com/bjensen",
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "addresses": [
                {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                 "region": "CA", "postalCode": "91608", "country": "USA", "primary": true},
                {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood",
                 "region": "CA", "postalCode": "91608", "country": "USA"}
            ],
            "phoneNumbers": [
                {"value": "555-555-5555", "type": "work"},
                {"value": "555-555-4444", "type": "mobile"}
            ],
            "ims": [{"value": "someaimhandle", "type": "aim"}],
            "photos": [
                {"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}
            ],
            "userType": "Employee",
            "title": "Tour Guide",
            "preferredLanguage": "en-US",
            "locale": "en-US",
            "timezone": "America/Los_Angeles",
            "active": true,
            "groups": [
                {"value": "e9e30dba-f08f-4109-8486-d5c6a331660a",
                 "$ref": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a",
                 "display": "Tour Guides"},
                {"value": "fc348aa8-3835-40eb-a20b-c726e15c55b5",
                 "$ref": "https://example.com/v2/Groups/fc348aa8-3835-40eb-a20b-c726e15c55b5",
                 "display": "Employees"}
            ],
            "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJ"}],
            ENTERPRISE_USER_SCHEMA: {
                "employeeNumber": "701984",
                "costCenter": "4130",
                "organization": "Universal Studios",
                "division": "Theme Park",
                "department": "Tour Operations",
                "manager": {
                    "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                    "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                    "displayName": "John Smith"
                }
            },
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z",
                "version": "W/\"a330bc54f0671c9\"",
                "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
            }
        })
    }

    fn rfc_group() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
            "displayName": "Tour Guides",
            "members": [
                {"value": "2819c223-7f76-453a-919d-413861904646", "type": "User", "display": "Babs Jensen",
                 "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"},
                {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User", "display": "Mandy Pepperidge",
                 "$ref": "https://example.com/v2/Users/902c246b-6245-4190-8e05-00816be7344a"}
            ],
            "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z",
                     "lastModified": "2011-05-13T04:42:34Z"}
        })
    }

    fn user_matches(text: &str) -> bool {
        matches(&parse(text), &rfc_user())
    }

    fn assert_user_matches(cases: &[(&str, bool)]) {
        let user = rfc_user();
        for (text, expected) in cases {
            assert_eq!(matches(&parse(text), &user), *expected, "{text}");
        }
    }

    /// The builtin registry with an integer `loginCount` and a decimal
    /// `score` added to the User schema.
    fn numeric_registry() -> SchemaRegistry {
        let mut docs: Vec<Value> = reg().schema_documents().cloned().collect();
        for doc in &mut docs {
            if doc["id"] == USER.core_schema()
                && let Some(attrs) = doc["attributes"].as_array_mut()
            {
                attrs.push(json!({"name": "loginCount", "type": "integer", "multiValued": false}));
                attrs.push(json!({"name": "score", "type": "decimal", "multiValued": false}));
            }
        }
        SchemaRegistry::from_documents(docs).expect("the modified schemas are valid")
    }

    // -- parsing -----------------------------------------------------------

    #[test]
    fn every_rfc_7644_example_filter_parses() {
        for text in [
            r#"userName eq "bjensen""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            "title pr",
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ] {
            parse(text);
        }
    }

    #[test]
    fn rfc_examples_become_the_expected_trees() {
        assert_eq!(
            shape(&parse(
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#
            )),
            r#"(usertype ne Text("Employee") and not (emails.value co Text("example.com") or emails.value co Text("example.org")))"#
        );
        assert_eq!(
            shape(&parse(
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#
            )),
            r#"(emails[(emails.type eq Text("work") and emails.value co Text("@example.com"))] or ims[(ims.type eq Text("xmpp") and ims.value co Text("@foo.com"))])"#
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            shape(&parse(r#"title pr or userType eq "x" and active eq true"#)),
            r#"(title pr or (usertype eq Text("x") and active eq Bool(true)))"#
        );
        assert_eq!(
            shape(&parse(r#"title pr and userType eq "x" or active eq true"#)),
            r#"((title pr and usertype eq Text("x")) or active eq Bool(true))"#
        );
        assert_eq!(
            shape(&parse(r#"(title pr or userType eq "x") and active eq true"#)),
            r#"((title pr or usertype eq Text("x")) and active eq Bool(true))"#
        );
    }

    #[test]
    fn logical_operators_associate_to_the_left() {
        assert_eq!(
            shape(&parse("title pr or nickName pr or locale pr")),
            "((title pr or nickname pr) or locale pr)"
        );
    }

    #[test]
    fn operators_keywords_and_literals_are_case_insensitive() {
        let lower = parse(r#"userName eq "x" and title pr or not (active eq true)"#);
        for text in [
            r#"userName EQ "x" AND title PR OR NOT (active Eq TRUE)"#,
            r#"userName Eq "x" And title pR Or Not(active eQ True)"#,
        ] {
            assert_eq!(parse(text), lower, "{text}");
        }
    }

    #[test]
    fn attribute_names_are_case_insensitive_and_carry_lowercase_index_keys() {
        assert_eq!(parse(r#"USERNAME eq "x""#), parse(r#"userName eq "x""#));
        for (text, key) in [
            ("NAME.FamilyName pr", "name.familyname"),
            ("Emails.VALUE pr", "emails.value"),
            ("meta.LASTMODIFIED pr", "meta.lastmodified"),
            ("ID pr", "id"),
            ("externalID pr", "externalid"),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:DEPARTMENT pr",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department",
            ),
        ] {
            assert_eq!(first_ref(&parse(text)).key, key, "{text}");
        }
    }

    #[test]
    fn urn_qualified_paths_resolve_like_their_short_forms() {
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#),
            parse(r#"userName sw "J""#)
        );
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq "J""#),
            parse(r#"name.familyName eq "J""#)
        );
        let manager = parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#);
        let attr = first_ref(&manager);
        assert_eq!(
            attr.key,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value"
        );
        assert_eq!(
            (attr.extension_urn(), attr.attribute_name(), attr.sub_attribute_name()),
            (
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"),
                "manager",
                Some("value")
            )
        );
        assert_eq!(attr.source, AttrSource::Indexed);
    }

    #[test]
    fn attributes_kept_in_columns_are_filtered_on_their_columns() {
        // The store does not index these as values (`column_source`), so
        // a filter that read values for them would find nothing.
        for kind in [USER, GROUP] {
            let core = reg().core_schema(kind).attributes.iter();
            for def in core.chain(reg().common_attributes()) {
                let Ok(filter) = parse_filter(reg(), kind, &format!("{} pr", def.name)) else {
                    continue;
                };
                let source = first_ref(&filter).source;
                let in_column = column_source(kind, &def.name).is_some();
                assert_eq!(
                    in_column,
                    matches!(
                        source,
                        AttrSource::UserName | AttrSource::DisplayName | AttrSource::ExternalId
                    ),
                    "{kind:?} {}",
                    def.name
                );
            }
        }
    }

    #[test]
    fn attributes_map_to_their_sources() {
        let source = |kind: ResourceKind, text: &str| {
            first_ref(&parse_filter(reg(), kind, text).unwrap_or_else(|e| panic!("{text}: {e}"))).source
        };
        for (kind, text, expected) in [
            (USER, "id pr", AttrSource::Id),
            (GROUP, "externalId pr", AttrSource::ExternalId),
            (USER, "userName pr", AttrSource::UserName),
            (USER, "displayName pr", AttrSource::DisplayName),
            (GROUP, "displayName pr", AttrSource::DisplayName),
            (USER, "meta.created pr", AttrSource::MetaCreated),
            (USER, "meta.lastModified pr", AttrSource::MetaLastModified),
            (GROUP, "meta.resourceType pr", AttrSource::MetaResourceType),
            (USER, "meta.location pr", AttrSource::MetaLocation),
            (USER, "meta.version pr", AttrSource::MetaVersion),
            (USER, "schemas pr", AttrSource::Schemas),
            (GROUP, "members pr", AttrSource::Members),
            (GROUP, "members.value pr", AttrSource::Members),
            (GROUP, "members.type pr", AttrSource::Members),
            (GROUP, "members.display pr", AttrSource::Members),
            (GROUP, "members.$ref pr", AttrSource::Members),
            (GROUP, r#"members[value eq "x"]"#, AttrSource::Members),
            (USER, "groups.value pr", AttrSource::Groups),
            (USER, "groups pr", AttrSource::Groups),
            (USER, "emails.value pr", AttrSource::Indexed),
            (USER, "name pr", AttrSource::Indexed),
            (
                USER,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName pr",
                AttrSource::Indexed,
            ),
        ] {
            assert_eq!(source(kind, text), expected, "{text}");
        }
    }

    #[test]
    fn references_carry_type_case_exactness_and_multi_valuedness_from_the_schema() {
        let info = |f: Filter| {
            let a = first_ref(&f).clone();
            (a.attr_type, a.case_exact, a.multi_valued)
        };
        assert_eq!(info(parse(r#"userName eq "x""#)), (AttrType::String, false, false));
        assert_eq!(info(parse(r#"displayName eq "x""#)), (AttrType::String, false, false));
        assert_eq!(info(parse(r#"emails.value eq "x""#)), (AttrType::String, false, true));
        assert_eq!(info(parse(r#"id eq "x""#)), (AttrType::String, true, false));
        assert_eq!(info(parse(r#"externalId eq "x""#)), (AttrType::String, true, false));
        assert_eq!(info(parse("active eq true")), (AttrType::Boolean, false, false));
        assert_eq!(info(parse("emails pr")), (AttrType::Complex, false, true));
        assert_eq!(info(parse("name pr")), (AttrType::Complex, false, false));
        assert_eq!(
            info(parse(r#"x509Certificates.value eq "AA==""#)),
            (AttrType::Binary, true, true)
        );
        assert_eq!(
            info(parse_group(r#"members.value eq "x""#)),
            (AttrType::String, false, true)
        );
    }

    #[test]
    fn comparing_a_multi_valued_complex_attribute_compares_its_value() {
        assert_eq!(
            parse(r#"emails co "example.com""#),
            parse(r#"emails.value co "example.com""#)
        );
        assert_eq!(
            shape(&parse_group(r#"members eq "abc""#)),
            r#"members.value eq Text("abc")"#
        );
        assert_eq!(shape(&parse(r#"groups eq "g1""#)), r#"groups.value eq Text("g1")"#);
    }

    #[test]
    fn value_filter_attributes_are_sub_attributes_of_the_outer_attribute() {
        let filter = parse(r#"emails[type eq "work" and not (value co "@example.com") and primary eq true]"#);
        assert_eq!(
            shape(&filter),
            r#"emails[((emails.type eq Text("work") and not emails.value co Text("@example.com")) and emails.primary eq Bool(true))]"#
        );
        assert_eq!(
            shape(&parse_group(r#"members[value eq "u1" or type eq "Group"]"#)),
            r#"members[(members.value eq Text("u1") or members.type eq Text("Group"))]"#
        );
        let manager = parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "m"]"#);
        assert_eq!(
            shape(&manager),
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager[urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value eq Text("m")]"#
        );
        assert_eq!(
            shape(&parse(r#"name[givenName eq "Barbara"]"#)),
            r#"name[name.givenname eq Text("Barbara")]"#
        );
    }

    #[test]
    fn a_meta_value_filter_is_its_inner_filter() {
        assert_eq!(
            parse(r#"meta[lastModified gt "2011-05-13T04:42:34Z" and resourceType eq "User"]"#),
            parse(r#"meta.lastModified gt "2011-05-13T04:42:34Z" and meta.resourceType eq "User""#)
        );
    }

    #[test]
    fn eq_null_means_absent_and_ne_null_present() {
        assert_eq!(shape(&parse("title eq null")), "not title pr");
        assert_eq!(shape(&parse("title ne NULL")), "title pr");
        assert_eq!(shape(&parse("emails eq null")), "not emails pr");
        assert_eq!(shape(&parse("emails[value eq null]")), "emails[not emails.value pr]");
    }

    #[test]
    fn strings_are_json_strings_with_escapes() {
        let filter = parse(r#"displayName eq "a\"b\\c\u00e9\n\ud83d\ude00/""#);
        assert_eq!(
            filter,
            Filter::Compare(
                first_ref(&filter).clone(),
                CompareOp::Eq,
                Operand::Text("a\"b\\cé\n😀/".into())
            )
        );
        assert_eq!(shape(&parse(r#"title eq """#)), r#"title eq Text("")"#);
        assert_eq!(
            shape(&parse(r#"title eq "Ünïcødé ✓""#)),
            r#"title eq Text("Ünïcødé ✓")"#
        );
    }

    #[test]
    fn numbers_follow_json_number_syntax() {
        let reg = numeric_registry();
        let number = |text: &str| match parse_filter(&reg, USER, text) {
            Ok(Filter::Compare(_, _, Operand::Number(n))) => Ok(n),
            Ok(other) => panic!("{text}: {other:?}"),
            Err(e) => Err(e.detail),
        };
        assert_eq!(number("loginCount eq 42"), Ok(42.0));
        assert_eq!(number("loginCount gt -3"), Ok(-3.0));
        assert_eq!(number("score le 0.5"), Ok(0.5));
        assert_eq!(number("score lt 1.5E3"), Ok(1500.0));
        assert_eq!(number("score ge 2e-2"), Ok(0.02));
        for bad in ["01", "+1", ".5", "1.", "1e", "0x10", "1_000", "NaN", "Infinity"] {
            let err = number(&format!("score eq {bad}")).expect_err(bad);
            assert!(err.contains(&format!("invalid value \"{bad}\"")), "{bad}: {err}");
        }
        let err = number("score eq 1e400").expect_err("out of range");
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn numeric_attributes_take_numbers_and_order_but_not_substrings() {
        let reg = numeric_registry();
        let err = |text: &str| parse_filter(&reg, USER, text).expect_err(text).detail;
        assert!(err(r#"loginCount eq "3""#).contains("compare it with a number"));
        assert!(err("loginCount co 3").contains("operator \"co\" does not apply"));
        assert!(err("score eq true").contains("decimal"));
    }

    #[test]
    fn date_time_operands_are_normalized() {
        let op = |text: &str| match parse(text) {
            Filter::Compare(_, _, operand) => operand,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            op(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#),
            Operand::DateTime("2011-05-13T04:42:34.000000Z".into())
        );
        assert_eq!(
            op(r#"meta.created le "2011-05-13T06:42:34.5+02:00""#),
            Operand::DateTime("2011-05-13T04:42:34.500000Z".into())
        );
    }

    #[test]
    fn entra_boolean_strings_are_accepted() {
        assert_eq!(parse(r#"active eq "True""#), parse("active eq true"));
        assert_eq!(parse(r#"active ne "FALSE""#), parse("active ne false"));
        assert_eq!(parse(r#"emails[primary eq "true"]"#), parse("emails[primary eq true]"));
        assert_rejected(r#"active eq "yes""#, "compare it with true or false");
    }

    #[test]
    fn schemas_can_be_filtered_with_eq_and_ne() {
        let filter = parse(r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#);
        let attr = first_ref(&filter);
        assert_eq!(
            (attr.key.as_str(), attr.source, attr.multi_valued, attr.case_exact),
            ("schemas", AttrSource::Schemas, true, false)
        );
        assert_rejected(
            r#"schemas co "enterprise""#,
            "operator \"co\" does not apply to \"schemas\"",
        );
    }

    #[test]
    fn white_space_between_tokens_is_optional_around_brackets_and_quotes() {
        assert_eq!(parse(r#"emails[type eq"work"]"#), parse(r#"emails[ type eq "work" ]"#));
        assert_eq!(parse("not(title pr)"), parse("not ( title pr )"));
        assert_eq!(parse("\ttitle pr\n"), parse("title pr"));
    }

    // -- rejections ----------------------------------------------------------

    #[test]
    fn an_empty_filter_is_rejected() {
        for text in ["", "   "] {
            assert_rejected(text, "the filter is empty");
        }
    }

    #[test]
    fn an_unknown_operator_is_rejected_with_its_position() {
        assert_rejected(
            r#"userName eqq "bjensen""#,
            r#"unexpected token "eqq" at position 9; expected an operator"#,
        );
        assert_rejected(r#"userName = "bjensen""#, r#"unexpected token "=" at position 9"#);
        assert_rejected("userName", r#"missing operator after "userName" at position 8"#);
        assert_rejected(r#"userName "x""#, r#"unexpected token string "x" at position 9"#);
    }

    #[test]
    fn unknown_attributes_are_rejected_by_name() {
        assert_rejected(r#"nope eq "x""#, r#"unknown attribute "nope" at position 0"#);
        assert_rejected(r#"name.nope eq "x""#, r#"unknown attribute "name.nope""#);
        assert_rejected(r#"emails[nope eq "x"]"#, r#"unknown attribute "nope" of "emails""#);
        assert_rejected(
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x""#,
            "unknown attribute",
        );
        assert_rejected(
            r#"urn:example:foo:bar eq "x""#,
            r#"unknown attribute "urn:example:foo:bar""#,
        );
        let err = parse_filter(reg(), GROUP, r#"userName eq "x""#).expect_err("not a Group attribute");
        assert!(err.detail.contains("for Group resources"), "{}", err.detail);
    }

    #[test]
    fn malformed_attribute_paths_are_rejected() {
        assert_rejected(r#"1name eq "x""#, r#"invalid attribute path "1name" at position 0"#);
        assert_rejected(r#"name.familyName.x eq "x""#, "at most one sub-attribute");
        assert_rejected(r#"name. eq "x""#, "attribute name is empty");
        assert_rejected(
            r#"urn:ietf:params:scim:schemas:core:2.0:User: eq "x""#,
            "an attribute name must follow the schema URN",
        );
        assert_rejected(r#"user*name eq "x""#, "is not a valid attribute name");
    }

    #[test]
    fn unterminated_and_invalid_strings_are_rejected() {
        assert_rejected(r#"userName eq "bjensen"#, "unterminated string starting at position 12");
        assert_rejected(r#"userName eq "a\"#, "unterminated string");
        assert_rejected(r#"userName eq "\q""#, "invalid string at position 12");
        assert_rejected("userName eq \"a\u{1}b\"", "invalid string");
    }

    #[test]
    fn a_missing_value_is_rejected() {
        assert_rejected("userName eq", r#"missing value after "eq" at position 11"#);
        assert_rejected("userName eq )", r#"missing value after "eq": found ")" at position 12"#);
        assert_rejected("userName eq bjensen", r#"invalid value "bjensen" at position 12"#);
    }

    #[test]
    fn values_of_the_wrong_type_are_rejected() {
        assert_rejected("userName eq 1", "is a string attribute; compare it with a string");
        assert_rejected("userName eq true", "compare it with a string");
        assert_rejected(
            "active eq 1",
            "is a boolean attribute; compare it with true or false, not 1",
        );
        assert_rejected(r#"emails.primary eq "x""#, "boolean");
        assert_rejected(
            r#"meta.lastModified gt "yesterday""#,
            "compare it with a date-time string",
        );
        assert_rejected("meta.lastModified gt 5", "dateTime");
        assert_rejected("x509Certificates.value eq 1", "binary");
    }

    #[test]
    fn operators_that_do_not_fit_the_type_are_rejected() {
        assert_rejected(
            "active gt true",
            r#"operator "gt" does not apply to "active" at position 0, a boolean attribute"#,
        );
        assert_rejected("emails.primary le false", r#"operator "le""#);
        assert_rejected(r#"x509Certificates.value ge "AA==""#, "a binary attribute");
        assert_rejected(r#"x509Certificates.value co "AA""#, "a binary attribute");
        assert_rejected(r#"meta.lastModified co "2011""#, r#"operator "co" does not apply"#);
        assert_rejected(r#"meta.created sw "2011-05-13T04:42:34Z""#, "a dateTime attribute");
        assert_rejected(r#"active co "true""#, "boolean");
    }

    #[test]
    fn null_is_only_compared_with_eq_or_ne() {
        assert_rejected(
            "title gt null",
            "null at position 0 can only be compared with eq or ne, not gt",
        );
        assert_rejected("title co null", "not co");
    }

    #[test]
    fn pr_takes_no_value() {
        assert_rejected(r#"title pr "x""#, r#""pr" at position 6 takes no value"#);
        assert_rejected("title pr true", "takes no value");
    }

    #[test]
    fn complex_attributes_compare_only_through_a_value_sub_attribute() {
        assert_rejected(
            r#"name eq "x""#,
            r#""name" at position 0 is a complex attribute; compare one of its sub-attributes"#,
        );
        assert_rejected(r#"meta eq "x""#, "complex attribute");
        assert_rejected(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "x""#,
            "complex attribute",
        );
        assert_rejected(r#"addresses eq "x""#, "complex attribute");
    }

    #[test]
    fn value_filters_need_a_complex_attribute_and_relative_names() {
        assert_rejected(r#"userName[value eq "x"]"#, "is not a complex attribute");
        assert_rejected(
            r#"emails[emails.type eq "work"]"#,
            r#"must name a sub-attribute of "emails""#,
        );
        assert_rejected(
            r#"emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq "work"]"#,
            "must name a sub-attribute",
        );
        assert_rejected(r#"name.givenName[value eq "x"]"#, "not to the sub-attribute");
    }

    #[test]
    fn nested_value_filters_are_rejected() {
        assert_rejected(r#"emails[type[value eq "x"]]"#, "cannot be nested");
        assert_rejected(r#"emails[(type eq "a" or ims[value eq "x"])]"#, "cannot be nested");
    }

    #[test]
    fn a_sub_attribute_after_a_value_filter_is_rejected_in_filters() {
        assert_rejected(
            r#"emails[type eq "work"].value eq "x""#,
            r#"a value filter cannot be followed by a sub-attribute in a filter (".value" at position 22)"#,
        );
    }

    #[test]
    fn unbalanced_groups_and_trailing_tokens_are_rejected() {
        assert_rejected(
            r#"userName eq "x" foo"#,
            r#"unexpected token "foo" at position 16; expected "and", "or" or the end of the filter"#,
        );
        assert_rejected(r#"userName eq "x")"#, r#"unexpected token ")" at position 15"#);
        assert_rejected(
            r#"(userName eq "x""#,
            r#"missing ")" at position 16 to close the "(" at position 0"#,
        );
        assert_rejected(
            r#"(userName eq "x"]"#,
            r#"unexpected token "]" at position 16; expected "and", "or" or ")""#,
        );
        assert_rejected(r#"emails[type eq "x""#, r#"missing "]""#);
        assert_rejected("title pr and", "unexpected end of the filter at position 12");
        assert_rejected("title pr or or nickName pr", r#"unexpected token "or" at position 12"#);
        assert_rejected("and title pr", r#"unexpected token "and" at position 0"#);
        assert_rejected("not title pr", r#""not" at position 0 must be followed by "(""#);
        assert_rejected("()", r#"unexpected token ")" at position 1"#);
        assert_rejected(r#"userName eq "a" "b""#, r#"unexpected token string "b""#);
    }

    #[test]
    fn attributes_the_store_does_not_keep_are_rejected() {
        assert_rejected(
            r#"password eq "t1meMa$heen""#,
            r#""password" at position 0 is never returned"#,
        );
        assert_rejected("meta pr", "filter on one of its sub-attributes");
    }

    #[test]
    fn a_filter_over_4096_bytes_is_too_long() {
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_BYTES));
        assert_rejected(&long, "the filter is too long");
        let fits = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_BYTES - 14));
        assert_eq!(fits.len(), MAX_FILTER_BYTES);
        parse(&fits);
    }

    #[test]
    fn nesting_deeper_than_32_is_too_deep() {
        let nested = |n: usize| format!("{}title pr{}", "(".repeat(n), ")".repeat(n));
        parse(&nested(MAX_FILTER_DEPTH));
        assert_rejected(&nested(MAX_FILTER_DEPTH + 1), "the filter is too deep");
        let nots = |n: usize| format!("{}title pr{}", "not (".repeat(n), ")".repeat(n));
        parse(&nots(MAX_FILTER_DEPTH));
        assert_rejected(&nots(MAX_FILTER_DEPTH + 1), "too deep");
        let in_brackets = format!("emails[{}type pr{}]", "(".repeat(31), ")".repeat(31));
        parse(&in_brackets);
        let too_deep = format!("emails[{}type pr{}]", "(".repeat(32), ")".repeat(32));
        assert_rejected(&too_deep, "too deep");
        assert_rejected(&"(".repeat(4000), "too deep");
    }

    #[test]
    fn more_than_200_comparisons_is_too_complex() {
        let chain = |n: usize| vec!["title pr"; n].join(" or ");
        parse(&chain(MAX_FILTER_COMPARISONS));
        assert_rejected(&chain(MAX_FILTER_COMPARISONS + 1), "the filter is too complex");
        let in_value_filters = vec![r#"emails[type eq "a" and value pr]"#; 101].join(" or ");
        assert_rejected(&in_value_filters, "too complex");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_rejected(r#"title eq "é" foo"#, r#"unexpected token "foo" at position 13"#);
    }

    // -- reusable path grammar -----------------------------------------------

    #[test]
    fn parse_attr_path_splits_urns_names_and_sub_attributes() {
        let path = parse_attr_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
            .expect("valid path");
        assert_eq!(
            path,
            AttrPath {
                urn: Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
                name: "manager".into(),
                sub_attr: Some("value".into()),
            }
        );
        assert_eq!(
            path.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
        let members = parse_attr_path("members.$ref").expect("valid path");
        assert_eq!(members.sub_attr.as_deref(), Some("$ref"));
        for bad in ["", "a b", "a.b.c", "urn:x:", "-a", "emails[type eq \"x\"]"] {
            let err = parse_attr_path(bad).expect_err(bad);
            assert_eq!(err.scim_type, Some(ScimType::InvalidPath), "{bad}");
        }
    }

    #[test]
    fn parse_patch_path_reads_value_filters_and_trailing_sub_attributes() {
        let path = parse_patch_path(r#"emails[type eq "work"].value"#).expect("valid path");
        assert_eq!(path.attr.name, "emails");
        assert_eq!(path.sub_attr.as_deref(), Some("value"));
        let inner = path.filter.expect("a value filter");
        let validated = validate_value_path(reg(), USER, &path.attr, &inner).expect("valid filter");
        assert!(matches_element(&validated, &json!({"type": "Work", "value": "a"})));
        assert!(!matches_element(&validated, &json!({"type": "home"})));
        let plain = parse_patch_path("name.givenName").expect("valid path");
        assert_eq!(
            (plain.attr.sub_attr.as_deref(), plain.filter),
            (Some("givenName"), None)
        );
        let members = parse_patch_path(r#"members[value eq "2819c223"]"#).expect("valid path");
        assert!(members.filter.is_some() && members.sub_attr.is_none());
        for bad in [
            "",
            r#"emails[type eq "work"]value"#,
            r#"emails[type eq "work"].a.b"#,
            r#"emails[type eq]"#,
            r#"emails[type eq "work"] x"#,
        ] {
            let err = parse_patch_path(bad).expect_err(bad);
            assert_eq!(err.scim_type, Some(ScimType::InvalidPath), "{bad}");
        }
    }

    #[test]
    fn attr_ref_resolves_a_path_for_sorting() {
        let path = parse_attr_path("name.familyName").expect("valid path");
        let attr = attr_ref(reg(), USER, &path).expect("known attribute");
        assert_eq!(
            (attr.key.as_str(), attr.source),
            ("name.familyname", AttrSource::Indexed)
        );
        let unknown = parse_attr_path("nope").expect("valid path");
        assert!(attr_ref(reg(), USER, &unknown).is_err());
    }

    // -- evaluation ----------------------------------------------------------

    #[test]
    fn every_rfc_7644_example_evaluates_on_the_rfc_user() {
        assert_user_matches(&[
            (r#"userName eq "bjensen""#, false),
            (r#"userName eq "bjensen@example.com""#, true),
            (r#"name.familyName co "O'Malley""#, false),
            (r#"userName sw "J""#, false),
            (r#"userName sw "B""#, true),
            (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "b""#, true),
            ("title pr", true),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
            (r#"title pr and userType eq "Employee""#, true),
            (r#"title pr or userType eq "Intern""#, true),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                true,
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                true,
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                false,
            ),
            (r#"userType eq "Employee" and (emails.type eq "work")"#, true),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                true,
            ),
        ]);
    }

    #[test]
    fn string_equality_ignores_case_unless_case_exact() {
        assert_user_matches(&[
            (r#"userName eq "BJensen@Example.COM""#, true),
            (r#"displayName eq "babs jensen""#, true),
            (r#"emails.value eq "BABS@JENSEN.ORG""#, true),
            (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
            (r#"externalId eq "701984""#, true),
            (r#"x509Certificates.value eq "miidqzccaqygawibagiceaawdqyj""#, false),
            (r#"x509Certificates.value eq "MIIDQzCCAqygAwIBAgICEAAwDQYJ""#, true),
        ]);
    }

    #[test]
    fn case_folding_is_unicode_aware() {
        let filter = parse(r#"title eq "ÉCOLE""#);
        assert!(matches(&filter, &json!({"title": "école"})));
        assert!(matches(
            &parse(r#"title co "straSSe""#),
            &json!({"title": "Hauptstrasse"})
        ));
    }

    #[test]
    fn substring_operators_test_containment_prefix_and_suffix() {
        assert_user_matches(&[
            (r#"userName co "JENSEN@""#, true),
            (r#"userName co "smith""#, false),
            (r#"userName sw "bjensen""#, true),
            (r#"userName sw "example""#, false),
            (r#"userName ew ".COM""#, true),
            (r#"userName ew "bjensen""#, false),
            (r#"title co """#, true),
            (r#"externalId sw "70""#, true),
            (r#"id ew "904646""#, true),
            (r#"id co "C223""#, false),
        ]);
    }

    #[test]
    fn string_ordering_is_byte_wise_on_folded_values() {
        assert_user_matches(&[
            (r#"userName gt "BJENSEN""#, true),
            (r#"userName gt "bjensen@example.com""#, false),
            (r#"userName ge "BJENSEN@EXAMPLE.COM""#, true),
            (r#"userName lt "c""#, true),
            (r#"userName le "b""#, false),
            (r#"title gt "Tour""#, true),
            (r#"title lt "tour guide""#, false),
            (r#"title le "tour guide""#, true),
            (r#"externalId gt "7""#, true),
            (r#"externalId lt "8""#, true),
        ]);
        // Case-exact values order as written: "Z" < "a".
        let doc = json!({"id": "Zed"});
        assert!(matches(&parse(r#"id lt "a""#), &doc));
    }

    #[test]
    fn date_times_compare_as_instants_whatever_their_offset() {
        assert_user_matches(&[
            (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.lastModified eq "2011-05-13T04:42:34.000Z""#, true),
            (r#"meta.lastModified gt "2011-05-13T04:42:33.999Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T04:42:34.000001Z""#, true),
            (r#"meta.created lt "2011-01-01T00:00:00Z""#, true),
            (r#"meta.created ge "2011-01-01T00:00:00Z""#, false),
            (r#"meta.created ne "2010-01-23T04:56:22Z""#, false),
        ]);
        let odd = json!({"meta": {"lastModified": "2011-05-13T05:42:34+01:00"}});
        assert!(matches(&parse(r#"meta.lastModified eq "2011-05-13T04:42:34Z""#), &odd));
        let garbage = json!({"meta": {"lastModified": "yesterday"}});
        assert!(!matches(
            &parse(r#"meta.lastModified lt "2999-01-01T00:00:00Z""#),
            &garbage
        ));
    }

    #[test]
    fn numbers_compare_as_floats() {
        let reg = numeric_registry();
        let doc = json!({"loginCount": 42, "score": 0.75});
        for (text, expected) in [
            ("loginCount eq 42", true),
            ("loginCount eq 42.0", true),
            ("loginCount ne 42", false),
            ("loginCount gt 41.5", true),
            ("loginCount ge 42", true),
            ("loginCount lt 42", false),
            ("loginCount le 1e2", true),
            ("score gt 0.5", true),
            ("score lt -1", false),
            ("score eq null", false),
        ] {
            let filter = parse_filter(&reg, USER, text).expect(text);
            assert_eq!(matches(&filter, &doc), expected, "{text}");
        }
        let filter = parse_filter(&reg, USER, "loginCount eq 42").expect("valid");
        assert!(
            !matches(&filter, &json!({"loginCount": "42"})),
            "a string is not a number"
        );
    }

    #[test]
    fn booleans_compare_with_eq_and_ne() {
        assert_user_matches(&[
            ("active eq true", true),
            ("active eq false", false),
            ("active ne false", true),
            (r#"active eq "True""#, true),
            ("emails.primary eq true", true),
            ("emails[type eq \"home\" and primary eq true]", false),
            ("emails[type eq \"work\" and primary eq true]", true),
            ("emails.primary eq false", false),
            ("emails.primary ne true", false),
        ]);
    }

    #[test]
    fn comparisons_on_absent_attributes_are_false_and_ne_is_true() {
        let absent = [
            r#"nickName eq "x""#,
            r#"nickName co "x""#,
            r#"nickName gt "a""#,
            r#"name.middleName sw "J""#,
            "entitlements.primary eq true",
            r#"roles.value eq "x""#,
            r#"meta.lastModified gt "2000-01-01T00:00:00Z""#,
        ];
        let doc = json!({"userName": "a", "name": {"givenName": "b"}});
        for text in absent {
            assert!(!matches(&parse(text), &doc), "{text}");
        }
        for text in [r#"nickName ne "x""#, r#"roles.value ne "x""#, "active ne true"] {
            assert!(matches(&parse(text), &doc), "{text}");
        }
        assert!(user_matches(&format!(r#"{DEPARTMENT} ne "Sales""#)));
        assert!(matches(&parse(&format!(r#"{DEPARTMENT} ne "Sales""#)), &doc));
        assert!(!matches(&parse(&format!(r#"{DEPARTMENT} eq "Sales""#)), &doc));
    }

    #[test]
    fn multi_valued_comparisons_hold_if_any_value_matches_and_ne_if_none_equals() {
        assert_user_matches(&[
            (r#"emails.value eq "babs@jensen.org""#, true),
            (r#"emails.value eq "bjensen@example.com""#, true),
            (r#"emails.value ne "babs@jensen.org""#, false),
            (r#"emails.value ne "nobody@example.com""#, true),
            (r#"emails.type ne "home""#, false),
            (r#"emails.type ne "other""#, true),
            (r#"phoneNumbers.value sw "555-555-4""#, true),
            (r#"addresses.postalCode eq "91608""#, true),
            (r#"not (emails.value eq "babs@jensen.org")"#, false),
        ]);
    }

    #[test]
    fn a_value_filter_must_match_within_one_element() {
        assert_user_matches(&[
            (r#"emails[type eq "home" and value co "@example.com"]"#, false),
            (r#"emails.type eq "home" and emails.value co "@example.com""#, true),
            (r#"emails[type eq "home" and value co "@jensen.org"]"#, true),
            (r#"emails[type eq "home" and not (primary eq true)]"#, true),
            (r#"emails[type eq "work" and not (primary eq true)]"#, false),
            (r#"addresses[type eq "home" and streetAddress co "hollywood"]"#, true),
            (r#"addresses[type eq "work" and streetAddress co "hollywood"]"#, false),
            (r#"ims[type eq "xmpp"]"#, false),
            (r#"not (ims[type eq "xmpp"])"#, true),
            (r#"name[givenName eq "barbara" and familyName eq "jensen"]"#, true),
            (r#"name[givenName eq "barbara" and familyName eq "smith"]"#, false),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[displayName sw "John"]"#,
                true,
            ),
        ]);
        assert!(!matches(
            &parse(r#"name[not (givenName eq "x")]"#),
            &json!({"userName": "a"})
        ));
    }

    #[test]
    fn not_negates_its_filter() {
        assert_user_matches(&[
            ("not (title pr)", false),
            ("not (nickName eq \"Babs\")", false),
            ("not (not (title pr))", true),
            (r#"not (userType eq "Intern") and not (title eq "CEO")"#, true),
        ]);
    }

    #[test]
    fn present_means_a_non_empty_value() {
        assert_user_matches(&[
            ("title pr", true),
            ("name pr", true),
            ("name.middleName pr", true),
            ("emails pr", true),
            ("emails.display pr", false),
            ("entitlements pr", false),
            ("active pr", true),
            ("meta.lastModified pr", true),
            (&format!("{DEPARTMENT} pr"), true),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr",
                true,
            ),
        ]);
        let empty = json!({
            "title": "",
            "nickName": null,
            "name": {"givenName": "", "familyName": null},
            "emails": [],
            "ims": [{}],
            "phoneNumbers": [{"value": null, "type": ""}],
            "roles": [{"value": "r", "type": ""}]
        });
        for (text, expected) in [
            ("title pr", false),
            ("nickName pr", false),
            ("name pr", false),
            ("name.givenName pr", false),
            ("emails pr", false),
            ("ims pr", false),
            ("phoneNumbers pr", false),
            ("roles pr", true),
            ("roles.type pr", false),
            ("userName pr", false),
        ] {
            assert_eq!(matches(&parse(text), &empty), expected, "{text}");
        }
    }

    #[test]
    fn eq_null_and_ne_null_test_presence() {
        assert_user_matches(&[
            ("title eq null", false),
            ("title ne null", true),
            ("entitlements eq null", true),
            ("entitlements ne null", false),
            ("emails[display eq null]", true),
        ]);
        assert!(matches(&parse("title eq null"), &json!({"title": ""})));
    }

    #[test]
    fn resource_keys_match_case_insensitively() {
        let doc = json!({
            "USERNAME": "bjensen",
            "Name": {"FamilyName": "Jensen"},
            "EMAILS": [{"Value": "a@example.com", "TYPE": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "Ops"},
            "Meta": {"LastModified": "2011-05-13T04:42:34Z"}
        });
        for text in [
            r#"userName eq "bjensen""#,
            r#"name.familyName eq "jensen""#,
            r#"emails[type eq "work" and value ew "example.com"]"#,
            &format!(r#"{DEPARTMENT} eq "ops""#),
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        ] {
            assert!(matches(&parse(text), &doc), "{text}");
        }
    }

    #[test]
    fn extension_attributes_are_read_under_their_urn() {
        assert_user_matches(&[
            (&format!(r#"{DEPARTMENT} eq "tour operations""#), true),
            (&format!(r#"{DEPARTMENT} sw "Tour""#), true),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName eq "Babs Jensen""#,
                false,
            ),
            (r#"displayName eq "John Smith""#, false),
        ]);
    }

    #[test]
    fn schemas_match_the_resource_schemas_case_insensitively() {
        assert_user_matches(&[
            (r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:user""#, true),
            (
                r#"schemas eq "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER""#,
                true,
            ),
            (r#"schemas eq "urn:example:other""#, false),
            (r#"schemas ne "urn:example:other""#, true),
            ("schemas pr", true),
        ]);
        let core_only = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]});
        let enterprise = parse(r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#);
        assert!(!matches(&enterprise, &core_only));
    }

    #[test]
    fn group_members_and_user_groups_are_matched_by_element() {
        let group = rfc_group();
        for (text, expected) in [
            (r#"members.value eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (r#"members eq "902c246b-6245-4190-8e05-00816be7344a""#, true),
            (r#"members eq "nobody""#, false),
            (
                r#"members[value eq "902c246b-6245-4190-8e05-00816be7344a" and display eq "mandy pepperidge"]"#,
                true,
            ),
            (
                r#"members[value eq "902c246b-6245-4190-8e05-00816be7344a" and display eq "babs jensen"]"#,
                false,
            ),
            (r#"members.type eq "user""#, true),
            ("members pr", true),
            (r#"displayName eq "tour guides""#, true),
            (r#"meta.resourceType eq "Group""#, true),
        ] {
            assert_eq!(matches(&parse_group(text), &group), expected, "{text}");
        }
        assert!(!matches(
            &parse_group("members pr"),
            &json!({"displayName": "empty", "members": []})
        ));
        assert_user_matches(&[
            (r#"groups.value eq "fc348aa8-3835-40eb-a20b-c726e15c55b5""#, true),
            (r#"groups eq "e9e30dba-f08f-4109-8486-d5c6a331660a""#, true),
            (r#"groups.display eq "employees""#, true),
            (
                r#"groups[display eq "Employees" and value eq "e9e30dba-f08f-4109-8486-d5c6a331660a"]"#,
                false,
            ),
        ]);
    }

    #[test]
    fn meta_attributes_are_matched_on_the_rendered_meta() {
        assert_user_matches(&[
            (r#"meta.resourceType eq "User""#, true),
            (
                r#"meta.location ew "/Users/2819c223-7f76-453a-919d-413861904646""#,
                true,
            ),
            (r#"meta.version eq "W/\"a330bc54f0671c9\"""#, true),
            (
                r#"meta[resourceType eq "User" and created lt "2011-01-01T00:00:00Z"]"#,
                true,
            ),
        ]);
    }

    #[test]
    fn matches_is_false_for_non_object_resources() {
        for doc in [json!(null), json!([]), json!("bjensen"), json!(1)] {
            assert!(!matches(&parse(r#"userName eq "bjensen""#), &doc));
            assert!(matches(&parse(r#"userName ne "bjensen""#), &doc));
        }
    }

    #[test]
    fn a_hand_built_null_operand_evaluates_as_presence() {
        let attr = first_ref(&parse("title pr")).clone();
        let eq_null = Filter::Compare(attr.clone(), CompareOp::Eq, Operand::Null);
        let ne_null = Filter::Compare(attr.clone(), CompareOp::Ne, Operand::Null);
        let gt_null = Filter::Compare(attr, CompareOp::Gt, Operand::Null);
        let user = rfc_user();
        assert_eq!(
            (
                matches(&eq_null, &user),
                matches(&ne_null, &user),
                matches(&gt_null, &user)
            ),
            (false, true, false)
        );
    }
}
