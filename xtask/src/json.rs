//! A small JSON reader for the handler's answers (xtask keeps to std). Keeps
//! object keys in order so printed summaries follow the handler's field order.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Compact one-line text: numbers without a needless `.0`, strings bare.
    pub fn brief(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(Value::brief).collect();
                format!("[{}]", inner.join(", "))
            }
            Value::Object(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k} {}", v.brief()))
                    .collect();
                inner.join(", ")
            }
        }
    }
}

pub fn parse(text: &str) -> Result<Value> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    let value = p.value()?;
    p.skip_ws();
    if p.at != p.chars.len() {
        bail!("unexpected text after JSON value at character {}", p.at);
    }
    Ok(value)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Result<char> {
        let c = self.peek();
        self.at += 1;
        c.ok_or_else(|| anyhow::anyhow!("JSON ends too early"))
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn expect(&mut self, word: &str) -> Result<()> {
        for want in word.chars() {
            if self.next()? != want {
                bail!("expected `{word}` at character {}", self.at);
            }
        }
        Ok(())
    }

    fn value(&mut self) -> Result<Value> {
        self.skip_ws();
        match self.peek() {
            Some('n') => self.expect("null").map(|()| Value::Null),
            Some('t') => self.expect("true").map(|()| Value::Bool(true)),
            Some('f') => self.expect("false").map(|()| Value::Bool(false)),
            Some('"') => self.string().map(Value::String),
            Some('[') => self.array(),
            Some('{') => self.object(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) => bail!("unexpected `{c}` at character {}", self.at),
            None => bail!("JSON ends too early"),
        }
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        match text.parse() {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => bail!("bad number `{text}`"),
        }
    }

    fn string(&mut self) -> Result<String> {
        self.expect("\"")?;
        let mut out = String::new();
        loop {
            match self.next()? {
                '"' => return Ok(out),
                '\\' => match self.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => out.push(self.unicode_escape()?),
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let mut n = 0;
        for _ in 0..4 {
            let c = self.next()?;
            n = n * 16
                + c.to_digit(16)
                    .ok_or_else(|| anyhow::anyhow!("bad \\u escape"))?;
        }
        Ok(n)
    }

    fn unicode_escape(&mut self) -> Result<char> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first)
            && self.chars[self.at..].starts_with(&['\\', 'u'])
        {
            self.at += 2;
            let low = self.hex4()?;
            0x10000 + ((first - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF)
        } else {
            first
        };
        Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn array(&mut self) -> Result<Value> {
        self.expect("[")?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.next()? {
                ',' => continue,
                ']' => return Ok(Value::Array(items)),
                c => bail!("expected `,` or `]`, found `{c}`"),
            }
        }
    }

    fn object(&mut self) -> Result<Value> {
        self.expect("{")?;
        let mut fields = Vec::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.at += 1;
            return Ok(Value::Object(fields));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            self.expect(":")?;
            fields.push((key, self.value()?));
            self.skip_ws();
            match self.next()? {
                ',' => continue,
                '}' => return Ok(Value::Object(fields)),
                c => bail!("expected `,` or `}}`, found `{c}`"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_invocation_answer() {
        let v = parse(
            r#"{"Outputs":{},"Logs":["a \"b\"","caf\u00e9 \ud83d\ude00"],"ReturnValue":{"alerted":{"email":3},"ok":true,"x":null,"f":-1.5e1}}"#,
        )
        .unwrap();
        let logs = v.get("Logs").unwrap();
        assert_eq!(
            logs,
            &Value::Array(vec![
                Value::String("a \"b\"".into()),
                Value::String("café 😀".into())
            ])
        );
        let rv = v.get("ReturnValue").unwrap();
        assert_eq!(rv.get("alerted").unwrap().brief(), "email 3");
        assert_eq!(rv.get("f"), Some(&Value::Number(-15.0)));
        assert_eq!(rv.get("x"), Some(&Value::Null));
    }

    #[test]
    fn rejects_broken_json() {
        assert!(parse(r#"{"a":1"#).is_err());
        assert!(parse(r#"{"a":1} x"#).is_err());
        assert!(parse("[1,]").is_err());
    }
}
