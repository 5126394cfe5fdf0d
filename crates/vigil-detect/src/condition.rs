//! The condition language: `and`, `or`, `not`, parentheses, `1 of x*`, `all of them` ...
//! Precedence, highest first: `not`, `and`, `or`.

/// A condition with search identifiers resolved to their index in the rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Search(usize),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// `N of ...` (`1 of` is the usual form; `any of` is read as `1 of`).
    AtLeast(usize, Vec<usize>),
    /// `all of ...`.
    All(Vec<usize>),
}

impl Cond {
    /// Evaluates the condition; `search` says whether the search identifier at an index matched.
    pub(crate) fn eval(&self, search: &mut dyn FnMut(usize) -> bool) -> bool {
        match self {
            Cond::Search(i) => search(*i),
            Cond::Not(c) => !c.eval(search),
            Cond::And(cs) => cs.iter().all(|c| c.eval(search)),
            Cond::Or(cs) => cs.iter().any(|c| c.eval(search)),
            Cond::AtLeast(n, ids) => {
                let mut hits = 0;
                ids.iter().any(|i| {
                    hits += usize::from(search(*i));
                    hits >= *n
                })
            }
            Cond::All(ids) => ids.iter().all(|i| search(*i)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        match c {
            '(' | ')' | ' ' | '\t' | '\n' | '\r' => {
                if !word.is_empty() {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                }
                match c {
                    '(' => tokens.push(Token::Open),
                    ')' => tokens.push(Token::Close),
                    _ => {}
                }
            }
            '|' => return Err("aggregations (`| count() ...`) are not supported".into()),
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        tokens.push(Token::Word(word));
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    names: &'a [&'a str],
}

/// Parses `text` against the rule's search identifier names (in rule order).
pub(crate) fn parse(text: &str, names: &[&str]) -> Result<Cond, String> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
        names,
    };
    if p.tokens.is_empty() {
        return Err("empty condition".into());
    }
    let cond = p.or()?;
    match p.tokens.get(p.pos) {
        None => Ok(cond),
        Some(t) => Err(format!(
            "unexpected {} after a complete expression",
            show(t)
        )),
    }
}

fn show(t: &Token) -> String {
    match t {
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Word(w) => format!("`{w}`"),
    }
}

fn is_kw(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.and()?];
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.not()?];
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self) -> Result<Cond, String> {
        if is_kw(self.peek(), "not") {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, String> {
        let token = self
            .peek()
            .cloned()
            .ok_or_else(|| "unexpected end of condition".to_string())?;
        self.pos += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                match self.peek() {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err("missing `)`".into()),
                }
            }
            Token::Close => Err("unexpected `)`".into()),
            Token::Word(w) => {
                if is_kw(self.peek(), "of") {
                    self.pos += 1;
                    return self.quantified(&w);
                }
                if ["and", "or", "not", "of", "them"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
                {
                    return Err(format!("unexpected `{w}`"));
                }
                match self.names.iter().position(|n| *n == w) {
                    Some(i) => Ok(Cond::Search(i)),
                    None => Err(format!("unknown search identifier `{w}`")),
                }
            }
        }
    }

    fn quantified(&mut self, quantifier: &str) -> Result<Cond, String> {
        let target = match self.peek() {
            Some(Token::Word(w)) => w.clone(),
            _ => return Err(format!("`{quantifier} of` needs a pattern or `them`")),
        };
        self.pos += 1;
        let ids: Vec<usize> = if target.eq_ignore_ascii_case("them") {
            (0..self.names.len())
                .filter(|i| !self.names[*i].starts_with('_'))
                .collect()
        } else {
            (0..self.names.len())
                .filter(|i| glob(&target, self.names[*i]))
                .collect()
        };
        if ids.is_empty() {
            return Err(format!("`{target}` matches no search identifier"));
        }
        if quantifier.eq_ignore_ascii_case("all") {
            return Ok(Cond::All(ids));
        }
        let n = if quantifier.eq_ignore_ascii_case("any") {
            1
        } else {
            quantifier
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("unknown quantifier `{quantifier} of`"))?
        };
        Ok(Cond::AtLeast(n, ids))
    }
}

/// Identifier patterns: `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(name) = name.strip_prefix(head) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            (0..=name.len())
                .filter(|i| name.is_char_boundary(*i))
                .any(|i| glob(rest, &name[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["sel", "sel_a", "sel_b", "filter", "_hidden"];

    fn eval(cond: &str, true_ids: &[usize]) -> bool {
        parse(cond, NAMES)
            .unwrap()
            .eval(&mut |i| true_ids.contains(&i))
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert_eq!(
            parse("sel or sel_a and not filter", NAMES).unwrap(),
            Cond::Or(vec![
                Cond::Search(0),
                Cond::And(vec![Cond::Search(1), Cond::Not(Box::new(Cond::Search(3)))])
            ])
        );
        assert!(eval("sel or sel_a and not filter", &[0, 3]));
        assert!(!eval("(sel or sel_a) and not filter", &[0, 3]));
        assert!(eval("not not sel", &[0]));
    }

    #[test]
    fn quantifiers_and_patterns() {
        assert_eq!(
            parse("1 of sel_*", NAMES).unwrap(),
            Cond::AtLeast(1, vec![1, 2])
        );
        assert_eq!(
            parse("all of sel*", NAMES).unwrap(),
            Cond::All(vec![0, 1, 2])
        );
        assert_eq!(
            parse("1 of them", NAMES).unwrap(),
            Cond::AtLeast(1, vec![0, 1, 2, 3])
        );
        assert!(eval("all of sel_* and not 1 of filter*", &[1, 2]));
        assert!(!eval("all of sel_* and not 1 of filter*", &[1, 2, 3]));
        assert!(!eval("all of them", &[0, 1, 2]));
        assert!(eval("all of them", &[0, 1, 2, 3]));
        assert!(eval("1 of them", &[4, 3]));
        assert!(!eval("1 of them", &[4]));
        assert!(eval("2 of sel*", &[0, 2]));
        assert!(glob("*_a", "sel_a") && glob("s*l*b", "sel_b") && !glob("x*", "sel"));
    }

    #[test]
    fn errors_are_explained() {
        let err = |c: &str| parse(c, NAMES).unwrap_err();
        assert!(err("sel and nope").contains("unknown search identifier `nope`"));
        assert!(err("(sel").contains("missing `)`"));
        assert!(err("sel)").contains("unexpected `)`"));
        assert!(err("sel and").contains("unexpected end"));
        assert!(err("1 of x*").contains("matches no search identifier"));
        assert!(err("sel | count() > 5").contains("aggregations"));
        assert!(err("sel sel_a").contains("unexpected `sel_a`"));
    }
}
