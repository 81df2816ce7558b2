//! The embedded protobuf schema table (`schema.txt`), parsed once on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("schema.txt");

/// How a message maps to JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// A JSON object with one member per field.
    Object,
    /// A named Go slice type: a message whose field 1 `items` holds the elements; JSON is that array.
    Items,
    /// `metav1.Time`: RFC 3339, seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339, microseconds.
    MicroTime,
    /// `metav1.Duration`: a Go duration string.
    Duration,
    /// `resource.Quantity`: its string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`: the embedded object.
    RawExtension,
    /// `metav1.FieldsV1`, apiextensions `JSON`: embedded JSON.
    RawJson,
    /// apiextensions `JSONSchemaPropsOrArray`: a schema or an array of schemas.
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: a schema or a boolean.
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: a schema or an array of strings.
    SchemaOrStringArray,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Double,
    String,
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Type {
    Scalar(Scalar),
    /// Index into [`Schema::messages`].
    Message(usize),
}

/// The Go shape of a field, which decides what an absent or zero value becomes in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A value (`T`): present on the wire even when zero.
    Value,
    /// A pointer (`*T`): present on the wire when set, even to zero.
    Pointer,
    /// `[]T`: a repeated field.
    Slice,
    /// `map[string]T`: repeated key/value entries.
    Map,
}

#[derive(Debug)]
pub(super) struct Field {
    pub number: u32,
    /// `None` for an embedded struct whose fields JSON inlines.
    pub json: Option<String>,
    pub shape: Shape,
    pub ty: Type,
    pub omitempty: bool,
}

#[derive(Debug)]
pub(super) struct Message {
    pub name: String,
    pub form: Form,
    pub fields: Vec<Field>,
}

impl Message {
    pub fn field(&self, number: u32) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.number == number)
    }

    #[cfg(test)]
    pub fn field_named(&self, json: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.json.as_deref() == Some(json))
    }
}

#[derive(Debug)]
pub(super) struct Schema {
    pub messages: Vec<Message>,
    by_name: HashMap<String, usize>,
    /// (apiVersion or `*`, kind) → message.
    kinds: HashMap<(String, String), usize>,
}

impl Schema {
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse(TABLE).unwrap_or_else(|e| panic!("protobuf/schema.txt: {e}")))
    }

    pub fn message_for_kind(&self, api_version: &str, kind: &str) -> Option<&Message> {
        let index = self
            .kinds
            .get(&(api_version.to_owned(), kind.to_owned()))
            .or_else(|| self.kinds.get(&("*".to_owned(), kind.to_owned())))?;
        Some(&self.messages[*index])
    }

    pub fn message(&self, name: &str) -> Option<&Message> {
        self.by_name.get(name).map(|&i| &self.messages[i])
    }

    /// Every (apiVersion, kind) the table decodes.
    #[cfg(test)]
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str)> {
        self.kinds.keys().map(|(v, k)| (v.as_str(), k.as_str()))
    }

    fn parse(text: &str) -> Result<Schema, String> {
        // Two passes: names first, so that fields can refer to messages defined later.
        let mut by_name = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("message ") {
                let name = rest.split(' ').next().unwrap_or_default();
                let index = by_name.len();
                if by_name.insert(name.to_owned(), index).is_some() {
                    return Err(format!("message {name} defined twice"));
                }
            }
        }
        let mut messages: Vec<Message> = Vec::with_capacity(by_name.len());
        let mut kinds = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(field) = line.strip_prefix(' ') {
                let message = messages.last_mut().ok_or_else(|| format!("field outside a message: {line}"))?;
                message.fields.push(parse_field(field, &by_name)?);
            } else if words[0] == "message" && (2..=3).contains(&words.len()) {
                let form = match words.get(2) {
                    None => Form::Object,
                    Some(&"items") => Form::Items,
                    Some(&"time") => Form::Time,
                    Some(&"microtime") => Form::MicroTime,
                    Some(&"duration") => Form::Duration,
                    Some(&"quantity") => Form::Quantity,
                    Some(&"intorstring") => Form::IntOrString,
                    Some(&"rawextension") => Form::RawExtension,
                    Some(&"rawjson") => Form::RawJson,
                    Some(&"schemaorarray") => Form::SchemaOrArray,
                    Some(&"schemaorbool") => Form::SchemaOrBool,
                    Some(&"schemaorstringarray") => Form::SchemaOrStringArray,
                    Some(other) => return Err(format!("unknown form {other}")),
                };
                messages.push(Message { name: words[1].to_owned(), form, fields: Vec::new() });
            } else if words[0] == "kind" && words.len() == 4 {
                let index = *by_name.get(words[3]).ok_or_else(|| format!("unknown message {}", words[3]))?;
                kinds.insert((words[1].to_owned(), words[2].to_owned()), index);
            } else {
                return Err(format!("bad line: {line}"));
            }
        }
        Ok(Schema { messages, by_name, kinds })
    }
}

fn parse_field(line: &str, by_name: &HashMap<String, usize>) -> Result<Field, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (number, json, ty, omitempty) = match words[..] {
        [number, json, ty] => (number, json, ty, false),
        [number, json, ty, "omitempty"] => (number, json, ty, true),
        _ => return Err(format!("bad field: {line}")),
    };
    let number = number.parse().map_err(|_| format!("bad field number: {line}"))?;
    let json = (json != ",inline").then(|| json.to_owned());
    let (shape, ty) = if let Some(t) = ty.strip_prefix('*') {
        (Shape::Pointer, t)
    } else if let Some(t) = ty.strip_prefix("[]") {
        (Shape::Slice, t)
    } else if let Some(t) = ty.strip_prefix("map[string]") {
        (Shape::Map, t)
    } else {
        (Shape::Value, ty)
    };
    let ty = match ty {
        "bool" => Type::Scalar(Scalar::Bool),
        "int32" => Type::Scalar(Scalar::Int32),
        "int64" => Type::Scalar(Scalar::Int64),
        "uint32" => Type::Scalar(Scalar::Uint32),
        "uint64" => Type::Scalar(Scalar::Uint64),
        "double" => Type::Scalar(Scalar::Double),
        "string" => Type::Scalar(Scalar::String),
        "bytes" => Type::Scalar(Scalar::Bytes),
        name => Type::Message(*by_name.get(name).ok_or_else(|| format!("unknown type {name} in: {line}"))?),
    };
    Ok(Field { number, json, shape, ty, omitempty })
}
