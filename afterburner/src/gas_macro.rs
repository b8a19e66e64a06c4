//! A GNU `as` macro expander, so that the text padder ([`crate::asm_pad`]) sees every
//! statement that emits bytes.
//!
//! GNU `as` expands `.macro` invocations, `.rept`, `.irp` and `.irpc` blocks while it reads,
//! and evaluates `.if` and its relatives at the same time. A sensitive instruction written inside
//! a macro body (`ALTERNATIVE`, Linux's entry macros, the `extable_type_reg` macro gcc emits for
//! inline assembly) has no statement of its own in the input, so the padder could neither label
//! it nor place its padding. [`expand`] rewrites the input so that it has none of these
//! constructs left, following GNU `as` 2.40 (`gas/macro.c`, `gas/app.c`, `gas/cond.c`):
//!
//! * **Statements** are separated by newlines and `;` (outside strings), as `as` reads them; `#`
//!   and `/* */` comments are dropped inside expansions. Each statement is first normalized
//!   the way `as`'s input scrubber does it before macro processing: the first word, one blank,
//!   then the operands with a blank kept only between two symbol characters (letters, digits,
//!   `_ . $`, x86's `* % - ( [ { }`) or before a string. Argument splitting depends on it
//!   (`foo 1 + 2` is one argument, `foo 1 - 2` three).
//! * **Definitions**: `.macro NAME [FORMAL[:req|:vararg][=DEFAULT]]...` up to the matching
//!   `.endm` (nested definitions counted), `.purgem NAME`; macro names are case-insensitive.
//!   Definitions, invocations and `.exitm` must not depend on a conditional this expander cannot
//!   evaluate (see below); such input is refused.
//! * **Invocations**: positional arguments (separated by commas or blanks; a quoted argument
//!   loses its quotes; commas split even inside parentheses, blanks do not), keyword arguments
//!   `NAME=VALUE`, defaults, `:req`, `:vararg` (the rest of the line). In the body, `\NAME` and
//!   `&NAME` (with an optional trailing `'` or `&`) are replaced by the argument, `\()` by
//!   nothing, `\(TEXT)` by TEXT, `\@` by the number of macro expansions `as` has done before
//!   this one, `\+` by the number of earlier invocations of this macro. The result is read
//!   again as statements (an argument may hold `;`), so nested invocations, definitions and
//!   blocks expand in order. `.exitm` ends the expansion.
//! * **Blocks**: `.rept COUNT` (COUNT a constant expression), `.irp SYM[,] VALUES` (values split
//!   as macro arguments; no value: once with an empty one), `.irpc SYM[,] CHARS`, nested in any
//!   combination, up to the matching `.endr`. `.irp`/`.irpc` bodies get the substitutions of a
//!   macro body with SYM as the only formal; `.rept` bodies are copied as they are.
//! * **Conditionals** (`.if`, `.ifeq`, `.ifne`, `.ifge`, `.ifgt`, `.ifle`, `.iflt`, `.ifb`,
//!   `.ifnb`, `.ifc`, `.ifnc`, `.ifeqs`, `.ifnes`, `.ifdef`, `.ifndef`, `.ifnotdef`, `.elseif`,
//!   `.else`, `.endif`): the textual ones always, the numeric ones when the expression holds only
//!   integer and character constants (GNU `as` operators and precedence: `* / % << >>` above
//!   `| & ^ !` above `+ -` above comparisons (true is -1) above `&&` above `||`; 64-bit
//!   wrapping arithmetic, `>>` logical). An evaluated conditional disappears with its dead
//!   branches; one that depends on symbols (`.ifdef`, `.if .Lfound != 1`) is kept for `as`, and
//!   the statements of all its branches are expanded.
//!
//! **Lines** stay where `as` puts them for `-g` line tables: a macro's whole expansion goes on
//! the invocation's line (statements joined with `;`), as `as` attributes every line of an
//! expansion to the outermost invocation. `.rept`/`.irp`/`.irpc` bodies outside macros keep
//! their own lines, each repetition starting again at the body's first line: the unrolled
//! text is written with preprocessor line markers (`# LINE "FILE"`), and a marker after the
//! block restores the numbering. Definitions and dead branches become empty statements, so every
//! other line keeps its number and text.
//!
//! Refused ([`ExpandError`] naming the line): `.altmacro`, `.include`, `.rept` counts that are
//! not constant, `\+` in `.rept` bodies, definitions / `.purgem` / `.exitm` under a
//! conditional kept for `as`, conditionals left open by an expansion, dot-named macros, more
//! than 100 nested expansions or 64 MiB of expanded text. Input that `as` itself rejects
//! (a missing required argument, `.endm` without `.macro`, ...) is reported with
//! [`ExpandError::invalid`] set, so that the caller lets `as` diagnose it.
//!
//! The expansion is exact only as far as this model of `as` is; callers must check the result
//! ([`crate::asm_equiv`]: the expanded text must assemble to the same object as the input).

use crate::asm_pad::{lex, Kind};
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Deepest nesting of macro expansions (GNU `as` stops at 100 too).
const MAX_DEPTH: usize = 100;
/// Most bytes of expanded statements.
const MAX_OUTPUT: usize = 64 << 20;
/// Most repetitions of one `.rept`/`.irp`/`.irpc` block.
const MAX_REPEAT: u64 = 1 << 16;

/// The expanded text.
#[derive(Clone, Debug)]
pub struct Expanded {
    /// The text without macros, blocks or evaluable conditionals.
    pub text: String,
    /// True when anything was expanded, evaluated or removed (the text differs from the input).
    pub changed: bool,
}

/// Why the input could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandError {
    /// 1-based line of the input.
    pub line: usize,
    /// What.
    pub what: String,
    /// True when GNU `as` would reject the input too (let it report the error).
    pub invalid: bool,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for ExpandError {}

fn unsupported(line: usize, what: impl Into<String>) -> ExpandError {
    ExpandError {
        line,
        what: what.into(),
        invalid: false,
    }
}

fn invalid(line: usize, what: impl Into<String>) -> ExpandError {
    ExpandError {
        line,
        what: what.into(),
        invalid: true,
    }
}

fn is_name_beginner(c: u8) -> bool {
    c.is_ascii_alphabetic() || matches!(c, b'_' | b'.' | b'$')
}

fn is_part_of_name(c: u8) -> bool {
    is_name_beginner(c) || c.is_ascii_digit()
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Characters between which the scrubber keeps a blank (`app.c`'s symbol characters, x86's
/// `extra_symbol_chars`, and the backslash of macro parameters: `\\a \\b` stays two words).
fn is_scrub_symbol(c: u8) -> bool {
    is_part_of_name(c) || matches!(c, b'*' | b'%' | b'-' | b'(' | b'[' | b'{' | b'}' | b'\\')
}

/// Replaces `/* */` comments outside strings with a blank.
fn strip_block_comments(s: &str) -> String {
    if !s.contains("/*") {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
        } else if c == b'"' {
            in_str = true;
            out.push(c);
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = s[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            out.push(b' ');
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The statement body (no labels, no comments) as `as`'s input scrubber leaves it.
pub(crate) fn scrub(body: &str) -> String {
    let body = strip_block_comments(body).replace(['\n', '\r'], " ");
    let b = body.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    // The first word.
    while i < b.len() && !is_blank(b[i]) {
        if b[i] == b'"' {
            i = copy_string(b, i, &mut out);
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    if i < b.len() {
        out.push(b' ');
    }
    // Operands.
    let mut after_symbol = false;
    let mut pending_blank = false;
    while i < b.len() {
        let c = b[i];
        if is_blank(c) {
            pending_blank = after_symbol;
            i += 1;
            continue;
        }
        if c == b'"' {
            if pending_blank {
                out.push(b' ');
            }
            pending_blank = false;
            i = copy_string(b, i, &mut out);
            // Back to the state before the string.
            continue;
        }
        if c == b'\'' && i + 1 < b.len() {
            // A character constant becomes its decimal value (`'a` and `'a'` are 97).
            if pending_blank {
                out.push(b' ');
            }
            pending_blank = false;
            let mut ch = b[i + 1];
            i += 2;
            if ch == b'\\' && i < b.len() {
                ch = match b[i] {
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    e => e,
                };
                i += 1;
            }
            if b.get(i) == Some(&b'\'') {
                i += 1;
            }
            out.extend_from_slice(ch.to_string().as_bytes());
            after_symbol = false;
            continue;
        }
        if is_scrub_symbol(c) {
            if pending_blank {
                out.push(b' ');
            }
            after_symbol = true;
        } else {
            after_symbol = false;
        }
        pending_blank = false;
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Copies the string starting at `b[i] == '"'` (escapes included); returns the index after it.
fn copy_string(b: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    out.push(b[i]);
    i += 1;
    while i < b.len() {
        let c = b[i];
        out.push(c);
        i += 1;
        if c == b'\\' && i < b.len() {
            out.push(b[i]);
            i += 1;
        } else if c == b'"' {
            break;
        }
    }
    i
}

// ---- gas's small parsers (macro.c) ------------------------------------------------------------

fn skip_white(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

/// `sb_skip_comma`: blanks, at most one comma, blanks.
fn skip_comma(b: &[u8], i: usize) -> usize {
    let mut i = skip_white(b, i);
    if i < b.len() && b[i] == b',' {
        i = skip_white(b, i + 1);
    }
    i
}

/// `get_token`: a name (or nothing).
fn get_token(b: &[u8], mut i: usize) -> (usize, String) {
    let s = i;
    if i < b.len() && is_name_beginner(b[i]) {
        i += 1;
        while i < b.len() && is_part_of_name(b[i]) {
            i += 1;
        }
    }
    (i, String::from_utf8_lossy(&b[s..i]).into_owned())
}

/// `getstring`: one or more adjacent quoted strings, quotes removed, `""` and `\"` giving `"`
/// (the backslash is kept).
fn get_string(b: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    while i < b.len() && b[i] == b'"' {
        i += 1;
        let mut escaped = false;
        while i < b.len() {
            escaped = if b[i - 1] == b'\\' { !escaped } else { false };
            if escaped && b[i] == b'"' {
                out.push(b'"');
                i += 1;
            } else if b[i] == b'"' {
                i += 1;
                if i >= b.len() || b[i] != b'"' {
                    break;
                }
                out.push(b'"');
                i += 1;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    i
}

fn is_base_prefix(c: u8) -> bool {
    matches!(c.to_ascii_lowercase(), b'b' | b'q' | b'h' | b'd')
}

fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b',' | b'"' | b';' | b')' | b'(')
}

/// `get_any_string`: one macro argument.
fn get_any_string(b: &[u8], i: usize) -> (usize, String) {
    let mut i = skip_white(b, i);
    let mut out: Vec<u8> = Vec::new();
    if i >= b.len() {
        return (i, String::new());
    }
    if b.len() > i + 2 && b[i + 1] == b'\'' && is_base_prefix(b[i]) {
        while i < b.len() && !is_sep(b[i]) {
            out.push(b[i]);
            i += 1;
        }
    } else if b[i] == b'"' {
        i = get_string(b, i, &mut out);
    } else {
        // Brackets seen but not closed (only blanks are allowed inside them).
        let mut brackets: Vec<u8> = Vec::new();
        while i < b.len() && (!brackets.is_empty() || !is_blank(b[i])) && b[i] != b',' {
            let c = b[i];
            match c {
                b'"' | b'\'' => {
                    out.push(c);
                    i += 1;
                    while i < b.len() && b[i] != c {
                        out.push(b[i]);
                        i += 1;
                    }
                    if i == b.len() {
                        return (i, String::from_utf8_lossy(&out).into_owned());
                    }
                }
                b'(' | b'[' => brackets.push(c),
                b')' if brackets.last() == Some(&b'(') => {
                    brackets.pop();
                }
                b']' if brackets.last() == Some(&b'[') => {
                    brackets.pop();
                }
                _ => {}
            }
            out.push(b[i]);
            i += 1;
        }
    }
    (i, String::from_utf8_lossy(&out).into_owned())
}

// ---- macros -----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FormalKind {
    Optional,
    Required,
    Vararg,
}

#[derive(Clone, Debug)]
struct Formal {
    name: String,
    default: String,
    kind: FormalKind,
}

#[derive(Debug)]
struct Macro {
    name: String,
    formals: Vec<Formal>,
    /// Body statements (labels + scrubbed body), in order.
    body: Vec<String>,
    /// Invocations so far (`\+`).
    count: Cell<u64>,
}

/// Parses `.macro NAME FORMALS` (the text after `.macro`).
fn parse_macro_header(rest: &str, line: usize) -> Result<(String, Vec<Formal>), ExpandError> {
    let b = rest.as_bytes();
    let i = skip_white(b, 0);
    let (i, name) = get_token(b, i);
    if name.is_empty() {
        return Err(invalid(line, "missing macro name"));
    }
    let cidx = skip_white(b, i);
    let mut idx = skip_comma(b, cidx);
    let mut formals = Vec::new();
    if idx == cidx || idx < b.len() {
        idx = skip_white(b, idx);
        while idx < b.len() {
            let (j, fname) = get_token(b, idx);
            if fname.is_empty() {
                break;
            }
            idx = skip_white(b, j);
            let mut kind = FormalKind::Optional;
            if idx < b.len() && b[idx] == b':' {
                let (j, qual) = get_token(b, skip_white(b, idx + 1));
                kind = match qual.as_str() {
                    "req" => FormalKind::Required,
                    "vararg" => FormalKind::Vararg,
                    _ => {
                        return Err(invalid(
                            line,
                            format!("bad qualifier `{qual}` of macro parameter `{fname}`"),
                        ))
                    }
                };
                idx = skip_white(b, j);
            }
            let mut default = String::new();
            if idx < b.len() && b[idx] == b'=' {
                let (j, d) = get_any_string(b, idx + 1);
                idx = skip_white(b, j);
                if kind != FormalKind::Required {
                    default = d;
                }
            }
            if formals.iter().any(|f: &Formal| f.name == fname) {
                return Err(invalid(
                    line,
                    format!("macro `{name}` has two parameters named `{fname}`"),
                ));
            }
            formals.push(Formal {
                name: fname,
                default,
                kind,
            });
            if kind == FormalKind::Vararg {
                break;
            }
            let c = idx;
            idx = skip_comma(b, idx);
            if idx != c && idx >= b.len() {
                idx = c;
                break;
            }
        }
    }
    if idx < b.len() {
        return Err(invalid(line, format!("bad parameter list for macro `{name}`")));
    }
    Ok((name, formals))
}

/// Parses invocation arguments (`macro_expand`); returns each formal's value.
fn parse_arguments(m: &Macro, args: &str, line: usize) -> Result<Vec<String>, ExpandError> {
    let b = args.as_bytes();
    let mut actual: Vec<Option<String>> = vec![None; m.formals.len()];
    let mut next_positional = 0usize;
    let mut keyword_seen = false;
    let mut idx = skip_white(b, 0);
    while idx < b.len() {
        let mut scan = idx;
        while scan < b.len() && !is_sep(b[scan]) && b[scan] != b'=' {
            scan += 1;
        }
        if scan < b.len() && b[scan] == b'=' {
            keyword_seen = true;
            let (j, key) = get_token(b, idx);
            if b.get(j) != Some(&b'=') {
                return Err(invalid(line, "confusion in formal parameters"));
            }
            let (j, value) = get_any_string(b, j + 1);
            idx = j;
            let Some(k) = m.formals.iter().position(|f| f.name == key) else {
                return Err(invalid(
                    line,
                    format!("parameter `{key}` does not exist for macro `{}`", m.name),
                ));
            };
            actual[k] = Some(value);
        } else {
            if keyword_seen {
                return Err(invalid(line, "can't mix positional and keyword arguments"));
            }
            let Some(f) = m.formals.get(next_positional) else {
                return Err(invalid(
                    line,
                    format!("too many positional arguments for macro `{}`", m.name),
                ));
            };
            if f.kind == FormalKind::Vararg {
                actual[next_positional] = Some(args[idx..].to_string());
                idx = b.len();
            } else {
                let (j, value) = get_any_string(b, idx);
                idx = j;
                actual[next_positional] = Some(value);
            }
            next_positional += 1;
        }
        idx = skip_comma(b, idx);
    }
    let mut values = Vec::with_capacity(m.formals.len());
    for (f, a) in m.formals.iter().zip(actual) {
        let a = a.unwrap_or_default();
        if f.kind == FormalKind::Required && a.is_empty() {
            return Err(invalid(
                line,
                format!(
                    "missing value for required parameter `{}` of macro `{}`",
                    f.name, m.name
                ),
            ));
        }
        values.push(if a.is_empty() { f.default.clone() } else { a });
    }
    Ok(values)
}

/// `macro_expand_body` on one statement: `formals[i]` is replaced by `values[i]`.
fn substitute(
    text: &str,
    formals: &[&str],
    values: &[String],
    number: u64,
    instance: u64,
) -> String {
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len() + 16);
    let lookup = |t: &str| formals.iter().position(|f| *f == t).map(|k| &values[k]);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'&' => {
                let (mut j, t) = get_token(b, i + 1);
                let amp = b.get(j) == Some(&b'&');
                if amp {
                    j += 1;
                }
                match lookup(&t) {
                    Some(v) => out.extend_from_slice(v.as_bytes()),
                    None => {
                        out.push(b'&');
                        out.extend_from_slice(t.as_bytes());
                        if amp {
                            out.push(b'&');
                        }
                    }
                }
                i = j;
            }
            b'\\' => {
                i += 1;
                match b.get(i) {
                    Some(b'(') => {
                        i += 1;
                        while i < b.len() && b[i] != b')' {
                            out.push(b[i]);
                            i += 1;
                        }
                        i = (i + 1).min(b.len());
                    }
                    Some(b'@') => {
                        out.extend_from_slice(number.to_string().as_bytes());
                        i += 1;
                    }
                    Some(b'+') => {
                        out.extend_from_slice(instance.to_string().as_bytes());
                        i += 1;
                    }
                    Some(b'&') => {
                        out.extend_from_slice(b"\\&");
                        i += 1;
                    }
                    _ => {
                        let (mut j, t) = get_token(b, i);
                        if b.get(j) == Some(&b'\'') {
                            j += 1;
                        }
                        match lookup(&t) {
                            Some(v) => out.extend_from_slice(v.as_bytes()),
                            None => {
                                out.push(b'\\');
                                out.extend_from_slice(t.as_bytes());
                            }
                        }
                        i = j;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---- expressions (expr.c) -------------------------------------------------------------------

/// Evaluates an absolute expression of integer and character constants; `None` when it holds
/// anything else (symbols, `.`, local label references) or cannot be evaluated.
pub(crate) fn eval_expr(e: &str) -> Option<i64> {
    let t = e.as_bytes();
    let mut i = 0;
    let v = expr(t, &mut i, 0)?;
    (skip_ws(t, i) == t.len()).then_some(v)
}

fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && t[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn atom(t: &[u8], i: &mut usize) -> Option<i64> {
    *i = skip_ws(t, *i);
    let c = *t.get(*i)?;
    match c {
        b'(' => {
            *i += 1;
            let v = expr(t, i, 0)?;
            *i = skip_ws(t, *i);
            (t.get(*i) == Some(&b')')).then(|| *i += 1)?;
            Some(v)
        }
        b'-' => {
            *i += 1;
            Some(atom(t, i)?.wrapping_neg())
        }
        b'+' => {
            *i += 1;
            atom(t, i)
        }
        b'~' => {
            *i += 1;
            Some(!atom(t, i)?)
        }
        b'!' => {
            *i += 1;
            Some(i64::from(atom(t, i)? == 0))
        }
        b'\'' => {
            *i += 1;
            let c = *t.get(*i)?;
            *i += 1;
            if c == b'\\' {
                let e = *t.get(*i)?;
                *i += 1;
                let v = match e {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' => 8,
                    b'f' => 12,
                    b'\\' => b'\\',
                    b'\'' => b'\'',
                    b'"' => b'"',
                    _ => return None,
                };
                Some(i64::from(v))
            } else {
                Some(i64::from(c))
            }
        }
        c if c.is_ascii_digit() => {
            let s = *i;
            while *i < t.len() && (t[*i].is_ascii_alphanumeric() || t[*i] == b'_') {
                *i += 1;
            }
            if t.get(*i).is_some_and(|&c| c == b'.' || c == b'$') {
                return None;
            }
            let lit = std::str::from_utf8(&t[s..*i]).ok()?.to_ascii_lowercase();
            let parsed = if let Some(h) = lit.strip_prefix("0x") {
                u64::from_str_radix(h, 16).ok()
            } else if let Some(b) = lit.strip_prefix("0b") {
                u64::from_str_radix(b, 2).ok()
            } else if lit.len() > 1 && lit.starts_with('0') {
                u64::from_str_radix(&lit[1..], 8).ok()
            } else {
                // `1f`/`1b` are local label references, not numbers.
                lit.parse::<u64>().ok()
            }?;
            Some(parsed as i64)
        }
        _ => None,
    }
}

/// Binary operator at `t[i..]`: (operator, length, rank); higher rank binds tighter.
fn binary_op(t: &[u8], i: usize) -> Option<(&'static str, usize, u8)> {
    let r = &t[i..];
    let two: &[(&str, u8)] = &[
        ("<<", 5),
        (">>", 5),
        ("==", 2),
        ("!=", 2),
        ("<>", 2),
        ("<=", 2),
        (">=", 2),
        ("&&", 1),
        ("||", 0),
    ];
    for &(op, rank) in two {
        if r.starts_with(op.as_bytes()) {
            return Some((op, 2, rank));
        }
    }
    let one = match r.first()? {
        b'*' => ("*", 5),
        b'/' => ("/", 5),
        b'%' => ("%", 5),
        b'|' => ("|", 4),
        b'&' => ("&", 4),
        b'^' => ("^", 4),
        b'!' => ("!", 4),
        b'+' => ("+", 3),
        b'-' => ("-", 3),
        b'<' => ("<", 2),
        b'>' => (">", 2),
        _ => return None,
    };
    Some((one.0, 1, one.1))
}

fn expr(t: &[u8], i: &mut usize, min_rank: u8) -> Option<i64> {
    let mut lhs = atom(t, i)?;
    loop {
        *i = skip_ws(t, *i);
        if *i >= t.len() {
            return Some(lhs);
        }
        let Some((op, len, rank)) = binary_op(t, *i) else {
            return Some(lhs);
        };
        if rank < min_rank {
            return Some(lhs);
        }
        *i += len;
        let rhs = expr(t, i, rank + 1)?;
        let truth = |b: bool| if b { -1 } else { 0 };
        lhs = match op {
            "*" => lhs.wrapping_mul(rhs),
            "/" => {
                if rhs == 0 {
                    return None;
                }
                lhs.wrapping_div(rhs)
            }
            "%" => {
                if rhs == 0 {
                    return None;
                }
                lhs.wrapping_rem(rhs)
            }
            "<<" => {
                let s = u32::try_from(rhs).ok().filter(|&s| s < 64)?;
                lhs.wrapping_shl(s)
            }
            ">>" => {
                let s = u32::try_from(rhs).ok().filter(|&s| s < 64)?;
                ((lhs as u64) >> s) as i64
            }
            "|" => lhs | rhs,
            "&" => lhs & rhs,
            "^" => lhs ^ rhs,
            "!" => lhs | !rhs,
            "+" => lhs.wrapping_add(rhs),
            "-" => lhs.wrapping_sub(rhs),
            "==" => truth(lhs == rhs),
            "!=" | "<>" => truth(lhs != rhs),
            "<" => truth(lhs < rhs),
            ">" => truth(lhs > rhs),
            "<=" => truth(lhs <= rhs),
            ">=" => truth(lhs >= rhs),
            "&&" => i64::from(lhs != 0 && rhs != 0),
            _ => i64::from(lhs != 0 || rhs != 0),
        };
    }
}

/// `get_mri_string` of `.ifc`: up to `terminator` (trailing blanks removed), or a `'`-quoted
/// string (quotes kept, `''` for one quote).
fn mri_string(b: &[u8], i: usize, terminator: u8) -> (usize, Vec<u8>) {
    let mut i = skip_white(b, i);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'\'') {
        out.push(b'\'');
        i += 1;
        while i < b.len() {
            out.push(b[i]);
            i += 1;
            if out.last() == Some(&b'\'') {
                if b.get(i) != Some(&b'\'') {
                    break;
                }
                i += 1;
            }
        }
        i = skip_white(b, i);
    } else {
        let s = i;
        while i < b.len() && b[i] != terminator {
            i += 1;
        }
        let mut e = i;
        while e > s && is_blank(b[e - 1]) {
            e -= 1;
        }
        out.extend_from_slice(&b[s..e]);
    }
    (i, out)
}

/// A C string for `.ifeqs` (escapes decoded); `None` when malformed.
fn c_string(b: &[u8], i: usize) -> Option<(usize, Vec<u8>)> {
    let mut i = skip_white(b, i);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => return Some((i + 1, out)),
            b'\\' => {
                let e = *b.get(i + 1)?;
                out.push(match e {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'\\' | b'"' => e,
                    _ => return None,
                });
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cond {
    True,
    False,
    /// Left for `as`.
    Unknown,
}

/// Evaluates `.ifXX REST`.
fn evaluate(d: &str, rest: &str) -> Cond {
    let b = rest.as_bytes();
    let from = |v: bool| if v { Cond::True } else { Cond::False };
    match d {
        ".ifb" | ".ifnb" => {
            let blank = skip_white(b, 0) >= b.len();
            from(blank == (d == ".ifb"))
        }
        ".ifc" | ".ifnc" => {
            let (i, s1) = mri_string(b, 0, b',');
            if b.get(i) != Some(&b',') {
                return Cond::Unknown;
            }
            let (_, s2) = mri_string(b, i + 1, b';');
            from((s1 == s2) == (d == ".ifc"))
        }
        ".ifeqs" | ".ifnes" => {
            let Some((i, s1)) = c_string(b, 0) else {
                return Cond::Unknown;
            };
            let i = skip_white(b, i);
            if b.get(i) != Some(&b',') {
                return Cond::Unknown;
            }
            let Some((_, s2)) = c_string(b, i + 1) else {
                return Cond::Unknown;
            };
            from((s1 == s2) == (d == ".ifeqs"))
        }
        ".ifdef" | ".ifndef" | ".ifnotdef" => Cond::Unknown,
        _ => match eval_expr(rest) {
            None => Cond::Unknown,
            Some(v) => from(match d {
                ".if" | ".ifne" | ".elseif" => v != 0,
                ".ifeq" => v == 0,
                ".ifge" => v >= 0,
                ".ifgt" => v > 0,
                ".ifle" => v <= 0,
                ".iflt" => v < 0,
                _ => return Cond::Unknown,
            }),
        },
    }
}

fn is_if(d: &str) -> bool {
    matches!(
        d,
        ".if"
            | ".ifeq"
            | ".ifne"
            | ".ifge"
            | ".ifgt"
            | ".ifle"
            | ".iflt"
            | ".ifb"
            | ".ifnb"
            | ".ifc"
            | ".ifnc"
            | ".ifeqs"
            | ".ifnes"
            | ".ifdef"
            | ".ifndef"
            | ".ifnotdef"
    )
}

fn is_conditional(d: &str) -> bool {
    is_if(d) || matches!(d, ".elseif" | ".else" | ".endif")
}

fn is_block_start(d: &str) -> bool {
    matches!(d, ".rept" | ".irp" | ".irpc")
}

// ---- the engine -------------------------------------------------------------------------------

/// One statement being processed.
#[derive(Clone, Debug)]
struct Item {
    /// Line of the input the statement is attributed to.
    line: usize,
    /// Labels (and leading blanks) before the body, verbatim.
    labels: String,
    /// Scrubbed body.
    body: String,
    /// Index of the input statement, for top-level items.
    top: Option<usize>,
    /// Kind of the body.
    kind: Kind,
}

impl Item {
    fn text(&self) -> String {
        let l = self.labels.trim();
        if l.is_empty() {
            self.body.clone()
        } else if self.body.is_empty() {
            l.to_string()
        } else {
            format!("{l} {}", self.body)
        }
    }

    /// Lower-case directive name (`.name`), if the body is a directive.
    fn directive(&self) -> Option<String> {
        if !matches!(self.kind, Kind::Directive(_)) {
            return None;
        }
        let b = self.body.as_bytes();
        let mut i = 1;
        while i < b.len() && is_part_of_name(b[i]) {
            i += 1;
        }
        Some(self.body[..i].to_ascii_lowercase())
    }

    /// The body after the directive or macro name.
    fn rest(&self) -> &str {
        let b = self.body.as_bytes();
        let mut i = usize::from(b.first() == Some(&b'.'));
        while i < b.len() && is_part_of_name(b[i]) {
            i += 1;
        }
        &self.body[i..]
    }
}

/// Splits `text` (one or more statements, no newlines needed) into items on `line`.
fn items_of(text: &str, line: usize) -> Vec<Item> {
    lex(text)
        .into_iter()
        .filter(|s| s.end > s.start && !text[s.start..s.end].trim().is_empty())
        .map(|s| Item {
            line,
            labels: text[s.start..s.body].to_string(),
            body: scrub(&text[s.body..s.end]),
            top: None,
            kind: s.kind,
        })
        .collect()
}

/// A conditional frame.
#[derive(Clone, Copy, Debug)]
struct Frame {
    state: Cond,
    /// A branch was taken (evaluated frames).
    taken: bool,
    /// The directives are kept for `as` (`.endif` must be kept too).
    emitted: bool,
    /// Pushed while skipping: only nesting is tracked.
    dead: bool,
}

/// Where the engine's output goes.
trait Sink {
    /// The statement stays as it is.
    fn keep(&mut self, it: &Item);
    /// The statement disappears (its labels stay when `labels`).
    fn remove(&mut self, it: &Item, labels: bool);
    /// `head` (an invocation or a block's first statement, up to `end`) becomes `stmts`.
    fn replace(&mut self, head: &Item, end: &Item, stmts: Vec<(usize, String)>);
    /// The statement is kept with a new text (a `.elseif` turned into `.if`).
    fn rewrite(&mut self, it: &Item, text: String);
}

/// Output of nested processing: statements with their lines.
#[derive(Default)]
struct Flat(Vec<(usize, String)>);

impl Sink for Flat {
    fn keep(&mut self, it: &Item) {
        let t = it.text();
        if !t.is_empty() {
            self.0.push((it.line, t));
        }
    }
    fn remove(&mut self, it: &Item, labels: bool) {
        let l = it.labels.trim();
        if labels && !l.is_empty() {
            self.0.push((it.line, l.to_string()));
        }
    }
    fn replace(&mut self, head: &Item, _end: &Item, stmts: Vec<(usize, String)>) {
        let l = head.labels.trim();
        if !l.is_empty() {
            self.0.push((head.line, l.to_string()));
        }
        self.0.extend(stmts);
    }
    fn rewrite(&mut self, it: &Item, text: String) {
        self.0.push((it.line, text));
    }
}

/// Output of top-level processing: a replacement per input statement.
struct Top<'a> {
    repl: Vec<Option<String>>,
    /// Logical `(file, line)` of every physical line (index 0 unused).
    logical: &'a [(Rc<str>, usize)],
    error: Option<ExpandError>,
}

impl Top<'_> {
    fn logical(&self, line: usize) -> (Rc<str>, usize) {
        self.logical
            .get(line)
            .cloned()
            .unwrap_or_else(|| (Rc::from(""), line))
    }

    fn marker(&mut self, file: &str, line: usize, at: usize) -> String {
        if file.contains(['"', '\\', '\n']) && self.error.is_none() {
            self.error = Some(unsupported(
                at,
                format!("file name {file:?} cannot be written in a line marker"),
            ));
        }
        format!("\n# {line} \"{file}\"\n")
    }

    /// `stmts` laid out from the line of `head` on: same line joined with `;`, the next line
    /// after a newline, any other line after a line marker. Returns the text and whether it
    /// left the head's line.
    fn render(&mut self, head_line: usize, stmts: &[(usize, String)]) -> (String, bool) {
        let (mut file, mut cur) = self.logical(head_line);
        let mut out = String::new();
        let mut first = true;
        let mut moved = false;
        for (l, s) in stmts {
            let (f, n) = self.logical(*l);
            if f == file && n == cur {
                if !first {
                    out.push_str("; ");
                }
            } else if f == file && n == cur + 1 {
                out.push('\n');
                moved = true;
            } else {
                let m = self.marker(&f, n, *l);
                out.push_str(&m);
                moved = true;
            }
            out.push_str(s);
            first = false;
            file = f;
            cur = n;
        }
        (out, moved)
    }
}

impl Sink for Top<'_> {
    fn keep(&mut self, _it: &Item) {}
    fn remove(&mut self, it: &Item, labels: bool) {
        let k = it.top.expect("top-level item");
        self.repl[k] = Some(if labels {
            it.labels.clone()
        } else {
            String::new()
        });
    }
    fn replace(&mut self, head: &Item, end: &Item, stmts: Vec<(usize, String)>) {
        let k = head.top.expect("top-level item");
        let (text, moved) = self.render(head.line, &stmts);
        self.repl[k] = Some(format!("{}{text}", head.labels));
        // The block's end disappears; when the expansion left the head's line, a line marker
        // takes its place so that the rest of `end`'s line keeps its number.
        let m = if moved {
            let (f, n) = self.logical(end.line);
            self.marker(&f, n, end.line)
        } else {
            String::new()
        };
        let ke = end.top.expect("top-level item");
        if ke == k {
            self.repl[k].get_or_insert_with(String::new).push_str(&m);
        } else {
            self.repl[ke] = Some(m);
        }
    }
    fn rewrite(&mut self, it: &Item, text: String) {
        let k = it.top.expect("top-level item");
        self.repl[k] = Some(format!("{}{text}", it.labels));
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Done,
    /// `.exitm`.
    Exit,
}

struct Engine {
    macros: HashMap<String, Rc<Macro>>,
    /// Macro expansions done so far (`\@`).
    number: u64,
    conds: Vec<Frame>,
    changed: bool,
    output: usize,
}

impl Engine {
    fn skipping(&self) -> bool {
        self.conds.iter().any(|f| f.state == Cond::False)
    }

    fn uncertain(&self) -> bool {
        self.conds.iter().any(|f| f.state == Cond::Unknown)
    }

    /// The macro `it` invokes, if any.
    fn invoked(&self, it: &Item) -> Option<Rc<Macro>> {
        if it.kind != Kind::Instruction || self.macros.is_empty() {
            return None;
        }
        let b = it.body.as_bytes();
        let (_, name) = get_token(b, 0);
        self.macros.get(&name.to_ascii_lowercase()).cloned()
    }

    /// Index of the statement closing the block opened at `items[i]`: `.endm` for `.macro`
    /// (nested definitions counted), `.endr` for `.rept`/`.irp`/`.irpc` (nested blocks counted).
    fn block_end(items: &[Item], i: usize, macro_def: bool) -> Option<usize> {
        let mut depth = 0usize;
        for (j, it) in items.iter().enumerate().skip(i) {
            let Some(d) = it.directive() else { continue };
            let opens = if macro_def {
                d == ".macro"
            } else {
                is_block_start(&d)
            };
            let closes = if macro_def { d == ".endm" } else { d == ".endr" };
            if opens {
                depth += 1;
            } else if closes {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
        }
        None
    }

    fn account(&mut self, stmts: &[(usize, String)], line: usize) -> Result<(), ExpandError> {
        self.output += stmts.iter().map(|(_, s)| s.len() + 2).sum::<usize>();
        if self.output > MAX_OUTPUT {
            return Err(unsupported(
                line,
                format!("the expansion exceeds {} MiB", MAX_OUTPUT >> 20),
            ));
        }
        Ok(())
    }

    fn conditional(&mut self, it: &Item, d: &str, sink: &mut dyn Sink) -> Result<(), ExpandError> {
        if is_if(d) {
            if self.skipping() {
                self.conds.push(Frame {
                    state: Cond::False,
                    taken: false,
                    emitted: false,
                    dead: true,
                });
                sink.remove(it, false);
                return Ok(());
            }
            let c = evaluate(d, it.rest());
            self.conds.push(Frame {
                state: c,
                taken: c == Cond::True,
                emitted: c == Cond::Unknown,
                dead: false,
            });
            if c == Cond::Unknown {
                sink.keep(it);
            } else {
                self.changed = true;
                sink.remove(it, true);
            }
            return Ok(());
        }
        let Some(f) = self.conds.last().copied() else {
            return Err(invalid(it.line, format!("`{d}` without `.if`")));
        };
        match d {
            ".endif" => {
                self.conds.pop();
                if f.emitted && !f.dead {
                    sink.keep(it);
                } else {
                    sink.remove(it, !f.dead);
                }
            }
            ".else" | ".elseif" => {
                if f.dead {
                    sink.remove(it, false);
                    return Ok(());
                }
                let top = self.conds.last_mut().expect("checked above");
                if f.emitted {
                    // Kept for `as`; every branch is expanded.
                    top.state = Cond::Unknown;
                    sink.keep(it);
                } else if f.taken {
                    top.state = Cond::False;
                    sink.remove(it, false);
                } else if d == ".else" {
                    top.state = Cond::True;
                    top.taken = true;
                    sink.remove(it, false);
                } else {
                    // Outer frames are active here: this frame's own state is all that
                    // decides, and it has taken no branch yet.
                    let c = evaluate(".elseif", it.rest());
                    top.state = c;
                    top.taken = c == Cond::True;
                    if c == Cond::Unknown {
                        top.emitted = true;
                        sink.rewrite(it, format!(".if{}", it.rest()));
                    } else {
                        sink.remove(it, false);
                    }
                }
                self.changed = true;
            }
            _ => unreachable!("is_conditional"),
        }
        Ok(())
    }

    /// Processes `items` in order.
    fn run(
        &mut self,
        items: &[Item],
        depth: usize,
        sink: &mut dyn Sink,
    ) -> Result<Flow, ExpandError> {
        let mut i = 0;
        while i < items.len() {
            let it = &items[i];
            let d = it.directive();
            if let Some(d) = d.as_deref().filter(|d| is_conditional(d)) {
                self.conditional(it, d, sink)?;
                i += 1;
                continue;
            }
            if self.skipping() {
                sink.remove(it, false);
                i += 1;
                continue;
            }
            match d.as_deref() {
                Some(".macro") => {
                    let Some(e) = Self::block_end(items, i, true) else {
                        return Err(invalid(it.line, "`.macro` without `.endm`"));
                    };
                    if self.uncertain() {
                        return Err(unsupported(
                            it.line,
                            "`.macro` under a conditional that is left to as",
                        ));
                    }
                    if !it.labels.trim().is_empty() {
                        return Err(unsupported(it.line, "a label before `.macro`"));
                    }
                    let (name, formals) = parse_macro_header(it.rest(), it.line)?;
                    if name.starts_with('.') {
                        return Err(unsupported(it.line, format!("macro name `{name}`")));
                    }
                    let mut body: Vec<String> = items[i + 1..e].iter().map(Item::text).collect();
                    let end_labels = items[e].labels.trim();
                    if !end_labels.is_empty() {
                        body.push(end_labels.to_string());
                    }
                    let key = name.to_ascii_lowercase();
                    if self.macros.contains_key(&key) {
                        return Err(invalid(
                            it.line,
                            format!("macro `{name}` was already defined"),
                        ));
                    }
                    self.macros.insert(
                        key,
                        Rc::new(Macro {
                            name,
                            formals,
                            body,
                            count: Cell::new(0),
                        }),
                    );
                    for x in &items[i..=e] {
                        sink.remove(x, false);
                    }
                    self.changed = true;
                    i = e + 1;
                    continue;
                }
                Some(".endm") => return Err(invalid(it.line, "`.endm` without `.macro`")),
                Some(".endr") => return Err(invalid(it.line, "`.endr` without `.rept`")),
                Some(".purgem") => {
                    if self.uncertain() {
                        return Err(unsupported(
                            it.line,
                            "`.purgem` under a conditional that is left to as",
                        ));
                    }
                    let (_, name) = get_token(it.rest().trim_start().as_bytes(), 0);
                    if self.macros.remove(&name.to_ascii_lowercase()).is_none() {
                        return Err(invalid(
                            it.line,
                            format!("`.purgem {name}`: no such macro"),
                        ));
                    }
                    sink.remove(it, true);
                    self.changed = true;
                    i += 1;
                    continue;
                }
                Some(".exitm") => {
                    if depth == 0 {
                        return Err(invalid(it.line, "`.exitm` outside a macro"));
                    }
                    if self.uncertain() {
                        return Err(unsupported(
                            it.line,
                            "`.exitm` under a conditional that is left to as",
                        ));
                    }
                    sink.remove(it, true);
                    return Ok(Flow::Exit);
                }
                Some(".altmacro") => {
                    return Err(unsupported(it.line, "`.altmacro` syntax"));
                }
                Some(".include") => {
                    return Err(unsupported(it.line, "`.include`"));
                }
                Some(b) if is_block_start(b) => {
                    let Some(e) = Self::block_end(items, i, false) else {
                        return Err(invalid(it.line, format!("`{b}` without `.endr`")));
                    };
                    let body = &items[i + 1..e];
                    let unrolled = self.unroll(it, b, body)?;
                    let mut flat = Flat::default();
                    let flow = self.run(&unrolled, depth, &mut flat)?;
                    if flow == Flow::Exit {
                        return Err(unsupported(it.line, "`.exitm` inside a block"));
                    }
                    self.account(&flat.0, it.line)?;
                    for x in body {
                        sink.remove(x, false);
                    }
                    sink.replace(it, &items[e], flat.0);
                    self.changed = true;
                    i = e + 1;
                    continue;
                }
                _ => {}
            }
            if let Some(m) = self.invoked(it) {
                if depth >= MAX_DEPTH {
                    return Err(unsupported(
                        it.line,
                        format!("macros nested more than {MAX_DEPTH} deep"),
                    ));
                }
                let values = parse_arguments(&m, it.rest(), it.line)?;
                let formals: Vec<&str> = m.formals.iter().map(|f| f.name.as_str()).collect();
                let number = self.number;
                let instance = m.count.get();
                let mut expansion = Vec::new();
                for s in &m.body {
                    let text = substitute(s, &formals, &values, number, instance);
                    expansion.extend(items_of(&text, it.line));
                }
                self.number += 1;
                m.count.set(instance + 1);
                let open = self.conds.len();
                let mut flat = Flat::default();
                let flow = self.run(&expansion, depth + 1, &mut flat)?;
                if flow == Flow::Exit {
                    // `.exitm` closes the conditionals opened inside the expansion; none of
                    // them can be kept for `as` (checked at `.exitm`).
                    self.conds.truncate(open);
                }
                if self.conds.len() != open {
                    return Err(unsupported(
                        it.line,
                        format!("macro `{}` leaves a conditional open", m.name),
                    ));
                }
                self.account(&flat.0, it.line)?;
                sink.replace(it, it, flat.0);
                self.changed = true;
                i += 1;
                continue;
            }
            sink.keep(it);
            i += 1;
        }
        Ok(Flow::Done)
    }

    /// The statements of a `.rept`/`.irp`/`.irpc` block, repeated.
    fn unroll(&mut self, head: &Item, d: &str, body: &[Item]) -> Result<Vec<Item>, ExpandError> {
        let rest = head.rest();
        let line = head.line;
        let mut out = Vec::new();
        let check = |n: u64| {
            if n > MAX_REPEAT {
                Err(unsupported(line, format!("`{d}` repeats more than {MAX_REPEAT} times")))
            } else {
                Ok(())
            }
        };
        if d == ".rept" {
            let n = eval_expr(rest).ok_or_else(|| {
                unsupported(line, format!("`.rept` count `{}` is not a constant", rest.trim()))
            })?;
            let n = u64::try_from(n).unwrap_or(0);
            check(n)?;
            if body.iter().any(|x| x.text().contains("\\+")) {
                return Err(unsupported(line, "`\\+` in a `.rept` body"));
            }
            for _ in 0..n {
                out.extend(body.iter().cloned().map(|mut x| {
                    x.top = None;
                    x
                }));
            }
            return Ok(out);
        }
        let b = rest.as_bytes();
        let (i, sym) = get_token(b, skip_white(b, 0));
        if sym.is_empty() {
            return Err(invalid(line, format!("`{d}`: missing model parameter")));
        }
        let mut idx = skip_comma(b, i);
        let mut values: Vec<String> = Vec::new();
        if idx >= b.len() {
            values.push(String::new());
        } else if d == ".irp" {
            while idx < b.len() {
                let (j, v) = get_any_string(b, idx);
                values.push(v);
                idx = skip_comma(b, j);
            }
        } else {
            let mut in_quotes = false;
            if b[idx] == b'"' {
                in_quotes = true;
                idx += 1;
            }
            while idx < b.len() {
                if b[idx] == b'"' {
                    in_quotes = !in_quotes;
                    let next = skip_white(b, idx + 1);
                    if next >= b.len() {
                        break;
                    }
                }
                values.push(String::from_utf8_lossy(&b[idx..=idx]).into_owned());
                idx += 1;
                if !in_quotes {
                    idx = skip_white(b, idx);
                }
            }
        }
        check(values.len() as u64)?;
        let formals = [sym.as_str()];
        for (k, v) in values.iter().enumerate() {
            let v = std::slice::from_ref(v);
            for x in body {
                let text = substitute(&x.text(), &formals, v, self.number, k as u64);
                out.extend(items_of(&text, x.line));
            }
        }
        Ok(out)
    }
}

/// Logical `(file, line)` of every physical line of `src`, following `# N "file"` markers;
/// `name` is the file before the first marker.
fn logical_lines(src: &str, name: &str) -> Vec<(Rc<str>, usize)> {
    let mut file: Rc<str> = Rc::from(name);
    let mut out = Vec::with_capacity(src.len() / 16 + 2);
    out.push((file.clone(), 0));
    let mut cur = 1usize;
    for l in src.split('\n') {
        out.push((file.clone(), cur));
        let marker = l.strip_prefix('#').and_then(|rest| {
            let rest = rest.trim_start();
            let rest = rest.strip_prefix("line").map_or(rest, str::trim_start);
            let num: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if num.is_empty() {
                return None;
            }
            let after = rest[num.len()..].trim_start();
            let f = after
                .strip_prefix('"')
                .and_then(|a| a.find('"').map(|e| &a[..e]));
            Some((num.parse::<usize>().ok()?, f))
        });
        match marker {
            Some((n, f)) => {
                if let Some(f) = f {
                    if *file != *f {
                        file = Rc::from(f);
                    }
                }
                cur = n;
            }
            None => cur += 1,
        }
    }
    out
}

/// The line of `original` that holds line `line` of its expansion `expanded`: the first with
/// the same logical position (following line markers), else `line` itself.
pub fn original_line(original: &str, expanded: &str, name: &str, line: usize) -> usize {
    let e = logical_lines(expanded, name);
    let Some(want) = e.get(line) else {
        return line;
    };
    logical_lines(original, name)
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, l)| *l == want)
        .map_or(line, |(p, _)| p)
}

/// Expands every macro, block and evaluable conditional of `src` (see the module
/// documentation). `name` is the input's file name as `as` would record it (line markers
/// written for unrolled blocks name it until the input's own markers name another file).
pub fn expand(src: &str, name: &str) -> Result<Expanded, ExpandError> {
    let stmts = lex(src);
    // Quick exit: nothing to do without these directives.
    let interesting = stmts.iter().any(|s| match &s.kind {
        Kind::Directive(d) => {
            d == ".macro"
                || is_block_start(d)
                || is_conditional(d)
                || matches!(d.as_str(), ".altmacro" | ".include" | ".endm" | ".endr")
        }
        _ => false,
    });
    if !interesting {
        return Ok(Expanded {
            text: src.to_string(),
            changed: false,
        });
    }
    let items: Vec<Item> = stmts
        .iter()
        .enumerate()
        .map(|(k, s)| Item {
            line: s.line,
            labels: src[s.start..s.body].to_string(),
            body: scrub(&src[s.body..s.end]),
            top: Some(k),
            kind: s.kind.clone(),
        })
        .collect();
    let logical = logical_lines(src, name);
    let mut engine = Engine {
        macros: HashMap::new(),
        number: 0,
        conds: Vec::new(),
        changed: false,
        output: 0,
    };
    let mut top = Top {
        repl: vec![None; stmts.len()],
        logical: &logical,
        error: None,
    };
    engine.run(&items, 0, &mut top)?;
    if let Some(e) = top.error {
        return Err(e);
    }
    if !engine.conds.is_empty() {
        return Err(invalid(
            stmts.last().map_or(1, |s| s.line),
            "end of input inside a conditional",
        ));
    }
    if !engine.changed {
        return Ok(Expanded {
            text: src.to_string(),
            changed: false,
        });
    }
    let mut text = String::with_capacity(src.len() + engine.output);
    let mut pos = 0;
    for (s, r) in stmts.iter().zip(&top.repl) {
        let Some(r) = r else { continue };
        text.push_str(&src[pos..s.start]);
        text.push_str(r);
        pos = s.end.max(s.start);
    }
    text.push_str(&src[pos..]);
    Ok(Expanded {
        text,
        changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(src: &str) -> String {
        expand(src, "t.s").unwrap().text
    }

    #[test]
    fn scrub_keeps_blanks_only_between_symbol_characters() {
        assert_eq!(scrub("show 1 + 2"), "show 1+2");
        assert_eq!(scrub("show  1 - 2"), "show 1 - 2");
        assert_eq!(scrub("show x (y)"), "show x (y)");
        assert_eq!(scrub("show (a) b"), "show (a)b");
        assert_eq!(scrub("show x \"y z\" , w"), "show x \"y z\",w");
        assert_eq!(scrub("mov %eax , 4(%rbp, %rax, 8)"), "mov %eax,4(%rbp,%rax,8)");
        assert_eq!(scrub("\tnop  "), "nop");
        assert_eq!(scrub("a /* c */ b"), "a b");
        assert_eq!(scrub("show x 'a"), "show x 97");
        assert_eq!(scrub("body \\cfunc \\has_error_code"), "body \\cfunc \\has_error_code");
        assert_eq!(scrub("show x }y, ~ z"), "show x }y,~z");
        assert_eq!(scrub("show 'a' b, '\\n"), "show 97b,10");
    }

    #[test]
    fn arguments_split_as_gas_splits_them() {
        let m = Macro {
            name: "show".into(),
            formals: parse_macro_header("show a, b, c", 1).unwrap().1,
            body: vec![],
            count: Cell::new(0),
        };
        let args = |s: &str| parse_arguments(&m, &scrub(&format!("x {s}"))[2..], 1).unwrap();
        assert_eq!(args("1 + 2"), ["1+2", "", ""]);
        assert_eq!(args("1 - 2"), ["1", "-", "2"]);
        assert_eq!(args("\"a b\" c"), ["a b", "c", ""]);
        assert_eq!(args("\"a\\\"b\" c"), ["a\\\"b", "c", ""]);
        assert_eq!(args("b=2 a=1"), ["1", "2", ""]);
        assert_eq!(args("a,,b"), ["a", "", "b"]);
        assert_eq!(args(",a"), ["", "a", ""]);
        assert!(parse_arguments(&m, "%eax,4(%rbp,%rax,8)", 1).is_err());
        let (_, f) = parse_macro_header("e2 a=7 b:req c:vararg", 1).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].default, "7");
        assert_eq!(f[1].kind, FormalKind::Required);
        assert_eq!(f[2].kind, FormalKind::Vararg);
    }

    #[test]
    fn substitution_follows_macro_expand_body() {
        let v = ["q".to_string()];
        assert_eq!(
            substitute("<&x|&x&|&y|\\x|\\y|\\()|\\(ab)|\\x'z|\\@|&&>", &["x"], &v, 17, 2),
            "<q|q|&y|q|\\y||ab|qz|17|&&>"
        );
    }

    #[test]
    fn expressions_follow_gas_precedence() {
        let e = |s| eval_expr(s).unwrap();
        assert_eq!(e("5==2+3"), -1);
        assert_eq!(e("1 || 0 && 0"), 1);
        assert_eq!(e("2 & 3 + 1"), 3);
        assert_eq!(e("0x10 | 1 ^ 3"), 0x12);
        assert_eq!(e("-8 >> 1"), 0x7fff_ffff_ffff_fffc);
        assert_eq!(e("1 ! 2"), !2 | 1);
        assert_eq!(e("-(((3)-(5)) > 0) * 2"), 0);
        assert_eq!(e("-(((5)-(3)) > 0) * 2"), 2);
        assert_eq!(e("'a + 1"), 0x62);
        assert_eq!(eval_expr("1f"), None);
        assert_eq!(eval_expr(".Lfound != 1"), None);
        assert_eq!(eval_expr("1/0"), None);
    }

    #[test]
    fn macros_expand_on_the_invocation_line() {
        let src = ".macro m a, b=2\n\tmov $\\a, %eax\n\tmov $\\b, %ebx\n.endm\n\tnop\n\tm 1\n\tm 3, 4 # c\n";
        let got = x(src);
        assert_eq!(got.lines().count(), src.lines().count());
        assert_eq!(got.lines().nth(5), Some("\tmov $1,%eax; mov $2,%ebx"));
        assert_eq!(got.lines().nth(6), Some("\tmov $3,%eax; mov $4,%ebx # c"));
        assert!(!got.contains(".macro") && !got.contains(".endm"));
    }

    #[test]
    fn conditionals_on_arguments_are_evaluated_others_kept() {
        let src = ".macro m r\n.ifc \\r, %rax\n cli\n.else\n sti\n.endif\n.ifdef X\n hlt\n.endif\n.endm\nm %rax\nm %rbx\n";
        let got = x(src);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[10], "cli; .ifdef X; hlt; .endif");
        assert_eq!(lines[11], "sti; .ifdef X; hlt; .endif");
    }

    /// Assembles `src` and its expansion with `as --64 -g` and demands the same object
    /// (bytes, relocations, symbols, line tables).
    fn same_object(src: &str) {
        let dir = tempfile::tempdir().unwrap();
        let asm = crate::asm_pad::Assembler {
            program: "as".into(),
            args: vec!["--64".into(), "-g".into()],
        };
        let marker = crate::asm_pad::line_marker("t.s");
        let e = expand(src, "t.s").unwrap_or_else(|e| panic!("{e}\n{src}"));
        assert!(e.changed, "{src}");
        let (a, b) = (dir.path().join("a.o"), dir.path().join("b.o"));
        asm.assemble(&format!("{marker}{src}"), &a).unwrap();
        asm.assemble(&format!("{marker}{}", e.text), &b)
            .unwrap_or_else(|err| panic!("{err}\n{}", e.text));
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        if let Err(why) = crate::asm_equiv::compare(&a, &b, "\u{0}") {
            panic!("{why}\n--- input\n{src}\n--- expansion\n{}", e.text);
        }
    }

    #[test]
    fn expansions_assemble_like_the_input() {
        // Blocks keep their body lines (line markers), nested in any way.
        same_object("\t.text\nf:\n\tnop\n.rept 2\n\tcli\n\tsti\n.endr\n\tret\n");
        same_object(".text\n.irp r,ax,bx\n\tpush %r\\r\n\tpop %r\\r\n.endr\n.irpc c,\"ab\"\n.byte '\\c, \\c\n.endr\nret\n.set a,1\n.set b,2\n");
        same_object(".text\n.rept 2\n.irp n,1,2\n.rept \\n\nnop\n.endr\n.endr\nhlt\n.endr\nret\n");
        // A block on one line (Linux's PMDS()).
        same_object(".data\ni = 0 ; .rept 3 ; .quad (i << 21) + 7 ; i = i + 1 ; .endr\n.byte 1\n");
        // Macros: defaults, keywords, varargs, \@ (in symbols), nesting, blocks inside,
        // invocations inside blocks, .exitm, .purgem and redefinition.
        same_object(concat!(
            ".macro m a, b=2, c:vararg\n",
            "lbl\\@: mov $\\a, %eax\n",
            "\tmov $\\b, %ebx\n",
            ".ifnb \\c\n",
            "\t.byte \\c\n",
            ".endif\n",
            ".rept \\b\n",
            "\tnop\n",
            ".endr\n",
            ".endm\n",
            ".macro outer x\n",
            "\tm \\x\n",
            ".if \\x > 2\n",
            "\t.exitm\n",
            ".endif\n",
            "\tcli\n",
            ".endm\n",
            ".text\n",
            "f:\tm 1\n",
            "\tm 3, 1, 7, 8\n",
            "\tm b=3 a=4\n",
            "\touter 1\n",
            "\touter 5\n",
            ".rept 2\n",
            "\touter 2\n",
            "\tsti\n",
            ".endr\n",
            ".purgem m\n",
            ".macro m\n",
            "\thlt\n",
            ".endm\n",
            "\tm\n",
            "\tret\n",
        ));
        // Conditionals: textual, numeric, symbolic (kept for as), .elseif chains.
        same_object(concat!(
            ".macro c r, n\n",
            ".ifc \\r, %rax\n",
            "\tpush %rax\n",
            ".elseif \\n == 3\n",
            "\tpush %rbx\n",
            ".elseif \\n == SYM\n",
            "\tpush %rcx\n",
            ".else\n",
            "\tpush %rdx\n",
            ".endif\n",
            ".ifdef SYM\n",
            "\tnop\n",
            ".endif\n",
            ".endm\n",
            ".set SYM, 4\n",
            ".text\n",
            "\tc %rax, 1\n",
            "\tc %rbx, 3\n",
            "\tc %rcx, 4\n",
            "\tc %rdx, 5\n",
            ".if 1 - 1\n",
            "\tud2\n",
            ".else\n",
            "\tint3\n",
            ".endif\n",
        ));
        // Linux's ALTERNATIVE (arch/x86/include/asm/alternative.h, 6.12, abridged), nested.
        same_object(concat!(
            ".macro altinstr_entry orig alt ft_flags orig_len alt_len\n",
            "\t.long \\orig - .\n",
            "\t.long \\alt - .\n",
            "\t.4byte \\ft_flags\n",
            "\t.byte \\orig_len\n",
            "\t.byte \\alt_len\n",
            ".endm\n",
            ".macro ALTERNATIVE oldinstr, newinstr, ft_flags\n",
            "740:\n",
            "\t\\oldinstr ;\n",
            "741:\n",
            "\t.skip -(((744f-743f)-(741b-740b)) > 0) * ((744f-743f)-(741b-740b)),0x90\n",
            "742:\n",
            "\t.pushsection .altinstructions,\"a\"\n",
            "\taltinstr_entry 740b,743f,\\ft_flags,742b-740b,744f-743f\n",
            "\t.popsection\n",
            "\t.pushsection .altinstr_replacement,\"ax\"\n",
            "743:\n",
            "\t\\newinstr\n",
            "744:\n",
            "\t.popsection ;\n",
            ".endm\n",
            ".text\n",
            "f:\tALTERNATIVE \"\", \"stac\", 9*32+20\n",
            ".macro user\n",
            "\tALTERNATIVE \"jmp .Lend_\\@\", \"\", 3\n",
            ".Lend_\\@:\n",
            ".endm\n",
            "\tuser\n",
            "\tuser\n",
            "\tALTERNATIVE \"call foo; nop\", \"rdgsbase %rax\", 7\n",
            "\tret\n",
        ));
        // gcc's inline-assembly macro (arch/x86/include/asm/asm.h), defined and purged per use,
        // in a preprocessed input with line markers.
        let ext = concat!(
            ".macro extable_type_reg type:req reg:req\n",
            ".set .Lfound, 0\n",
            ".set .Lregnr, 0\n",
            ".irp rs,rax,rcx,rdx,rbx,rsp,rbp,rsi,rdi,r8,r9,r10,r11,r12,r13,r14,r15\n",
            ".ifc \\reg, %\\rs\n",
            ".set .Lfound, .Lfound+1\n",
            ".long \\type + (.Lregnr << 8)\n",
            ".endif\n",
            ".set .Lregnr, .Lregnr+1\n",
            ".endr\n",
            ".if (.Lfound != 1)\n",
            ".error \"extable_type_reg: bad register argument\"\n",
            ".endif\n",
            ".endm\n",
        );
        same_object(&format!(
            "# 1 \"x.c\"\n.text\nf:\n# 139 \"msr.h\" 1\n1: rdmsr ; xor %eax,%eax\n2:\n .pushsection \"__ex_table\",\"a\"\n .long (1b) - .\n{ext}extable_type_reg reg=%rax, type=3 \n.purgem extable_type_reg\n .popsection\n\tret\n"
        ));
    }

    #[test]
    fn refusals_name_the_line() {
        let e = expand("nop\n.rept n\nnop\n.endr\n", "t.s").unwrap_err();
        assert_eq!((e.line, e.invalid), (2, false));
        let e = expand(".macro m a:req\n.endm\nm\n", "t.s").unwrap_err();
        assert_eq!((e.line, e.invalid), (3, true));
        let e = expand(".ifdef X\n.macro m\n.endm\n.endif\n", "t.s").unwrap_err();
        assert!(!e.invalid && e.line == 2, "{e}");
        let e = expand(".endm\n", "t.s").unwrap_err();
        assert!(e.invalid);
    }
}
