//! Generates `schema.txt` from the Go type metadata of binaries on the development machine.
//!
//! A Go binary keeps, for every struct type it can reflect on, the field names, Go types and struct tags
//! (`json:"replicas,omitempty" protobuf:"varint,1,opt,name=replicas"`). Those are exactly what the upstream
//! protobuf and JSON codecs are generated from, so they give the protobuf field numbers, the JSON names, which
//! scalars are pointers (present even when zero) and which fields are `omitempty`.
//!
//! Sources, in order:
//! - `kubectl.1.33` (Go 1.24): `k8s.io/api` and `k8s.io/apimachinery` as of Kubernetes 1.33;
//! - `anthoscli` (Go 1.24): `k8s.io/apiextensions-apiserver` v0.24, which kubectl does not link;
//! - [`SUPPLEMENT`]: the apiextensions fields added between 1.24 and 1.33 and the whole of
//!   `apiregistration.k8s.io/v1` (linked by neither), written by hand from the upstream protobuf schema (field
//!   numbers as in the `k8s-pb` crate, Go shapes and `omitempty` as in the upstream Go types) and checked against
//!   k8s-openapi's 1.33 schemas by `protobuf_schema_fields_match_k8s_openapi`.
//!
//! The ignored test `schema_matches_go_binaries` regenerates the table and compares it with the committed file
//! (`cargo test -p apimachinery protobuf -- --ignored`; skipped where the binaries are missing);
//! with `UPDATE_PROTOBUF_SCHEMA=1` it rewrites the file instead. It is ignored by default so that the build never
//! depends on what a machine has installed; the committed table is checked on every run by the fixture tests and
//! by `protobuf_schema_fields_match_k8s_openapi`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::registry::RESOURCES;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const ANTHOSCLI: &str = "/usr/lib/google-cloud-sdk/bin/anthoscli";
const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/protobuf/schema.txt");

/// Fields and messages that neither binary has (see the module documentation), in the table's own syntax.
/// A `message` block defines a message; an `extend` block adds fields to one taken from a binary.
const SUPPLEMENT: &str = "\
extend io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion
 9 selectableFields []io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.SelectableField omitempty
message io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.SelectableField
 1 jsonPath string
extend io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ValidationRule
 3 messageExpression string omitempty
 4 reason *string omitempty
 5 fieldPath string omitempty
 6 optionalOldSelf *bool omitempty
message io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService
 1 metadata io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta omitempty
 2 spec io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceSpec omitempty
 3 status io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus omitempty
message io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceSpec
 1 service *io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.ServiceReference omitempty
 2 group string omitempty
 3 version string omitempty
 4 insecureSkipTLSVerify bool omitempty
 5 caBundle bytes omitempty
 7 groupPriorityMinimum int32
 8 versionPriority int32
message io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.ServiceReference
 1 namespace string omitempty
 2 name string omitempty
 3 port *int32 omitempty
message io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus
 1 conditions []io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceCondition omitempty
message io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceCondition
 1 type string
 2 status string
 3 lastTransitionTime io.k8s.apimachinery.pkg.apis.meta.v1.Time omitempty
 4 reason string omitempty
 5 message string omitempty
";

/// Go types whose JSON form is not their struct form: (Go package path, type name, table kind).
const SPECIAL: &[(&str, &str, &str)] = &[
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Time", "time"),
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "MicroTime", "microtime"),
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Duration", "duration"),
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "FieldsV1", "rawjson"),
    ("k8s.io/apimachinery/pkg/api/resource", "Quantity", "quantity"),
    ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString", "intorstring"),
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension", "rawextension"),
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSON", "rawjson"),
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrArray", "schemaorarray"),
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrBool", "schemaorbool"),
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrStringArray", "schemaorstringarray"),
];

/// The Go package of a group version's types.
fn go_package(group: &str, version: &str) -> String {
    match group {
        "" => format!("k8s.io/api/core/{version}"),
        "apiextensions.k8s.io" => format!("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/{version}"),
        "apiregistration.k8s.io" => format!("k8s.io/kube-aggregator/pkg/apis/apiregistration/{version}"),
        _ => format!("k8s.io/api/{}/{version}", group.split('.').next().unwrap()),
    }
}

/// `k8s.io/api/core/v1` + `Pod` → `io.k8s.api.core.v1.Pod`, the OpenAPI definition name.
fn table_name(package: &str, name: &str) -> String {
    let rest = package.strip_prefix("k8s.io/").unwrap_or_else(|| panic!("unexpected package {package}"));
    format!("io.k8s.{}.{name}", rest.replace('/', "."))
}

// --- Go 1.24 runtime type metadata (internal/abi) in a non-PIE ELF executable ---

const KIND_BOOL: u8 = 1;
const KIND_INT: u8 = 2;
const KIND_INT32: u8 = 5;
const KIND_INT64: u8 = 6;
const KIND_UINT8: u8 = 8;
const KIND_UINT32: u8 = 10;
const KIND_UINT64: u8 = 11;
const KIND_FLOAT64: u8 = 14;
const KIND_MAP: u8 = 21;
const KIND_POINTER: u8 = 22;
const KIND_SLICE: u8 = 23;
const KIND_STRING: u8 = 24;
const KIND_STRUCT: u8 = 25;
const KIND_ARRAY: u8 = 17;

const TFLAG_UNCOMMON: u8 = 1;
const TFLAG_EXTRA_STAR: u8 = 2;
const TFLAG_NAMED: u8 = 4;

struct GoBinary {
    data: Vec<u8>,
    /// (virtual address, file offset, size) of each loaded section.
    sections: Vec<(u64, u64, u64)>,
    /// `runtime.types`: name and type offsets are relative to it.
    types: u64,
    typelinks: Vec<u64>,
}

#[derive(Clone, Debug)]
struct GoField {
    name: String,
    tag: String,
    embedded: bool,
    ty: u64,
}

impl GoBinary {
    fn open(path: &str) -> Option<GoBinary> {
        let data = std::fs::read(path).ok()?;
        assert_eq!(&data[..4], b"\x7fELF", "{path} is not an ELF file");
        let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap()) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
        let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
        let strtab = u64_at(shoff + shstrndx * shentsize + 0x18) as usize;
        let mut sections = Vec::new();
        let mut named = HashMap::new();
        for i in 0..shnum {
            let header = shoff + i * shentsize;
            let name_at = strtab + u32_at(header) as usize;
            let end = name_at + data[name_at..].iter().position(|&b| b == 0).unwrap();
            let name = String::from_utf8_lossy(&data[name_at..end]).into_owned();
            let (kind, addr, offset, size) =
                (u32_at(header + 4), u64_at(header + 16), u64_at(header + 24), u64_at(header + 32));
            const SHT_NOBITS: u32 = 8;
            if addr != 0 && kind != SHT_NOBITS {
                sections.push((addr, offset, size));
            }
            named.insert(name, (addr, offset, size));
        }
        let (types, _, _) = named[".rodata"];
        let (_, links_offset, links_size) = named[".typelink"];
        let typelinks = (0..links_size as usize / 4)
            .map(|i| {
                let at = links_offset as usize + 4 * i;
                types.wrapping_add_signed(i32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as i64)
            })
            .collect();
        Some(GoBinary { data, sections, types, typelinks })
    }

    fn offset(&self, address: u64) -> usize {
        let (addr, offset, _) = self
            .sections
            .iter()
            .find(|(addr, _, size)| (*addr..addr + size).contains(&address))
            .unwrap_or_else(|| panic!("address {address:#x} outside the loaded sections"));
        (address - addr + offset) as usize
    }

    fn u8(&self, address: u64) -> u8 {
        self.data[self.offset(address)]
    }

    fn i32(&self, address: u64) -> i32 {
        let o = self.offset(address);
        i32::from_le_bytes(self.data[o..o + 4].try_into().unwrap())
    }

    fn u64(&self, address: u64) -> u64 {
        let o = self.offset(address);
        u64::from_le_bytes(self.data[o..o + 8].try_into().unwrap())
    }

    fn varint(&self, mut o: usize) -> (usize, usize) {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let b = self.data[o];
            o += 1;
            value |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b < 0x80 {
                return (value, o);
            }
        }
    }

    /// An `abi.Name`: (name, tag, embedded).
    fn name(&self, address: u64) -> (String, String, bool) {
        let o = self.offset(address);
        let flags = self.data[o];
        let (len, start) = self.varint(o + 1);
        let name = String::from_utf8_lossy(&self.data[start..start + len]).into_owned();
        let mut tag = String::new();
        if flags & 2 != 0 {
            let (tag_len, tag_start) = self.varint(start + len);
            tag = String::from_utf8_lossy(&self.data[tag_start..tag_start + tag_len]).into_owned();
        }
        (name, tag, flags & 8 != 0)
    }

    fn kind(&self, ty: u64) -> u8 {
        self.u8(ty + 23) & 0x1f
    }

    /// The type's name as `reflect` prints it, e.g. `v1.Pod` or `*v1.Pod`.
    fn type_string(&self, ty: u64) -> String {
        let name = self.name(self.types.wrapping_add_signed(self.i32(ty + 40) as i64)).0;
        if self.u8(ty + 20) & TFLAG_EXTRA_STAR != 0 {
            name[1..].to_owned()
        } else {
            name
        }
    }

    /// (package path, name) of a named type.
    fn named(&self, ty: u64) -> Option<(String, String)> {
        let tflag = self.u8(ty + 20);
        if tflag & TFLAG_NAMED == 0 {
            return None;
        }
        let short = self.type_string(ty);
        let name = short.rsplit('.').next().unwrap().to_owned();
        if tflag & TFLAG_UNCOMMON == 0 {
            return Some((String::new(), name));
        }
        let uncommon = ty
            + match self.kind(ty) {
                KIND_STRUCT => 80,
                KIND_POINTER | KIND_SLICE => 56,
                KIND_ARRAY => 72,
                KIND_MAP => 88,
                _ => 48,
            };
        let package_offset = self.i32(uncommon);
        let package = if package_offset == 0 {
            String::new()
        } else {
            self.name(self.types.wrapping_add_signed(package_offset as i64)).0
        };
        Some((package, name))
    }

    fn elem(&self, ty: u64) -> u64 {
        self.u64(ty + 48)
    }

    fn map_value(&self, ty: u64) -> u64 {
        self.u64(ty + 56)
    }

    fn fields(&self, ty: u64) -> Vec<GoField> {
        let (array, len) = (self.u64(ty + 56), self.u64(ty + 64));
        (0..len)
            .map(|i| {
                let field = array + 24 * i;
                let (name, tag, embedded) = self.name(self.u64(field));
                GoField { name, tag, embedded, ty: self.u64(field + 8) }
            })
            .collect()
    }

    /// Every named struct type reachable from the type links, by (package path, name).
    fn structs(&self) -> HashMap<(String, String), u64> {
        let mut seen = BTreeSet::new();
        let mut stack = self.typelinks.clone();
        let mut structs = HashMap::new();
        while let Some(ty) = stack.pop() {
            if ty == 0 || !seen.insert(ty) {
                continue;
            }
            match self.kind(ty) {
                KIND_POINTER | KIND_SLICE | KIND_ARRAY => stack.push(self.elem(ty)),
                KIND_MAP => stack.extend([self.elem(ty), self.map_value(ty)]),
                KIND_STRUCT => {
                    stack.extend(self.fields(ty).iter().map(|f| f.ty));
                    if let Some(key) = self.named(ty) {
                        structs.insert(key, ty);
                    }
                }
                _ => {}
            }
        }
        structs
    }
}

/// The value of `key` in a Go struct tag.
fn tag_value<'a>(tag: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = tag.trim_start();
    while !rest.is_empty() {
        let colon = rest.find(':')?;
        let name = &rest[..colon];
        let value = rest[colon + 1..].strip_prefix('"')?;
        let end = value.find('"')?;
        if name == key {
            return Some(&value[..end]);
        }
        rest = value[end + 1..].trim_start();
    }
    None
}

// --- the table ---

#[derive(Default)]
struct Table {
    kinds: BTreeSet<(String, String, String)>,
    /// Message name → its header suffix (`""`, `" items"`, `" time"`, …) and field lines.
    messages: BTreeMap<String, (String, Vec<String>)>,
    /// Fields without a protobuf tag that are not `TypeMeta`, for the report.
    untagged: Vec<String>,
}

struct Walker<'a> {
    binary: &'a GoBinary,
    structs: HashMap<(String, String), u64>,
    table: &'a mut Table,
}

impl Walker<'_> {
    /// Adds the struct and everything it refers to; returns its table name.
    fn message(&mut self, package: &str, name: &str) -> String {
        let table_name = table_name(package, name);
        if self.table.messages.contains_key(&table_name) {
            return table_name;
        }
        if let Some((_, _, kind)) = SPECIAL.iter().find(|(p, n, _)| *p == package && *n == name) {
            self.table.messages.insert(table_name.clone(), (format!(" {kind}"), Vec::new()));
            if kind.starts_with("schemaor") {
                self.message(package, "JSONSchemaProps");
            }
            return table_name;
        }
        let ty = *self
            .structs
            .get(&(package.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("{package}.{name} is not in the binary"));
        self.table.messages.insert(table_name.clone(), (String::new(), Vec::new()));
        let mut lines = Vec::new();
        for field in self.binary.fields(ty) {
            let json = tag_value(&field.tag, "json");
            let Some(protobuf) = tag_value(&field.tag, "protobuf") else {
                if field.name != "TypeMeta" && json != Some("-") {
                    self.table.untagged.push(format!("{table_name}.{}", field.name));
                }
                continue;
            };
            let number: u32 = protobuf.split(',').nth(1).and_then(|n| n.parse().ok()).expect("protobuf tag number");
            let (json_name, omitempty) = match json {
                Some("-") => continue,
                Some(json) => {
                    let mut parts = json.split(',');
                    let name = parts.next().unwrap();
                    (name.to_owned(), parts.any(|p| p == "omitempty"))
                }
                None => (field.name.clone(), false),
            };
            let json_name = match (json_name.is_empty(), field.embedded) {
                (true, true) => ",inline".to_owned(),
                (true, false) => field.name.clone(),
                (false, _) => json_name,
            };
            // A named slice type is a wrapper message unless the tag says `rep` (then it is a plain repeated field).
            let repeated = protobuf.split(',').nth(2) == Some("rep");
            let ty = self.type_expr(field.ty, true, repeated);
            let flag = if omitempty { " omitempty" } else { "" };
            lines.push(format!("{number} {json_name} {ty}{flag}"));
        }
        self.table.messages.get_mut(&table_name).unwrap().1 = lines;
        table_name
    }

    /// The table type of a Go type: `*T`, `[]T`, `map[string]T`, a scalar or a message name.
    fn type_expr(&mut self, ty: u64, top: bool, repeated: bool) -> String {
        let binary = self.binary;
        match binary.kind(ty) {
            KIND_BOOL => "bool".into(),
            KIND_INT32 => "int32".into(),
            KIND_INT64 | KIND_INT => "int64".into(),
            KIND_UINT32 => "uint32".into(),
            KIND_UINT64 => "uint64".into(),
            KIND_FLOAT64 => "double".into(),
            KIND_STRING => "string".into(),
            KIND_POINTER if top => format!("*{}", self.type_expr(binary.elem(ty), false, false)),
            KIND_SLICE if binary.kind(binary.elem(ty)) == KIND_UINT8 => "bytes".into(),
            KIND_SLICE => match binary.named(ty).filter(|_| !(top && repeated)) {
                // A named slice type is a message wrapping `repeated … items = 1`.
                Some((package, name)) => {
                    let table_name = table_name(&package, &name);
                    if !self.table.messages.contains_key(&table_name) {
                        let item = self.type_expr(binary.elem(ty), false, false);
                        self.table
                            .messages
                            .insert(table_name.clone(), (" items".into(), vec![format!("1 items []{item}")]));
                    }
                    table_name
                }
                None if top => format!("[]{}", self.type_expr(binary.elem(ty), false, false)),
                None => panic!("nested slice {}", binary.type_string(ty)),
            },
            KIND_MAP if top => {
                assert_eq!(binary.kind(binary.elem(ty)), KIND_STRING, "map key of {}", binary.type_string(ty));
                format!("map[string]{}", self.type_expr(binary.map_value(ty), false, false))
            }
            KIND_STRUCT => {
                let (package, name) = binary.named(ty).expect("anonymous struct");
                self.message(&package, &name)
            }
            kind => panic!("unsupported Go type {} (kind {kind})", binary.type_string(ty)),
        }
    }
}

/// The kinds a request body may carry: every resource and subresource kind of the registry, and `DeleteOptions`.
fn roots() -> BTreeSet<(String, String, String)> {
    let mut roots = BTreeSet::new();
    for resource in RESOURCES {
        roots.insert((resource.group.to_owned(), resource.version.to_owned(), resource.kind.to_owned()));
        for sub in resource.subresources {
            roots.insert((sub.group.to_owned(), sub.version.to_owned(), sub.kind.to_owned()));
        }
    }
    roots
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// The table generated from the binaries, or `None` where one of them is missing.
fn generate() -> Option<String> {
    let kubectl = GoBinary::open(KUBECTL)?;
    let anthoscli = GoBinary::open(ANTHOSCLI)?;
    let mut table = Table::default();
    let apiextensions = go_package("apiextensions.k8s.io", "v1");
    let apiregistration = go_package("apiregistration.k8s.io", "v1");

    // apiextensions from anthoscli first, so that the shared apimachinery types come from kubectl below.
    let mut extension_types = Table::default();
    {
        let mut walker = Walker { binary: &anthoscli, structs: anthoscli.structs(), table: &mut extension_types };
        walker.message(&apiextensions, "CustomResourceDefinition");
    }
    let mut walker = Walker { binary: &kubectl, structs: kubectl.structs(), table: &mut table };
    walker.message("k8s.io/apimachinery/pkg/apis/meta/v1", "DeleteOptions");
    let delete_options = table_name("k8s.io/apimachinery/pkg/apis/meta/v1", "DeleteOptions");
    let mut kinds = BTreeSet::from([("*".to_owned(), "DeleteOptions".to_owned(), delete_options)]);
    for (group, version, kind) in roots() {
        let package = go_package(&group, &version);
        let name = table_name(&package, &kind);
        if package != apiextensions && package != apiregistration {
            walker.message(&package, &kind);
        }
        kinds.insert((api_version(&group, &version), kind, name));
    }
    let ext_prefix = table_name(&apiextensions, "");
    for (name, message) in extension_types.messages {
        if name.starts_with(&ext_prefix) {
            table.messages.insert(name, message);
        } else {
            assert!(table.messages.contains_key(&name), "{name} is used by apiextensions only");
        }
    }
    table.untagged.extend(extension_types.untagged);
    table.kinds = kinds;
    apply_supplement(&mut table);

    // Every referenced message is defined.
    for (name, (_, lines)) in &table.messages {
        for line in lines {
            let ty = line.split(' ').nth(2).unwrap();
            let target = ty.trim_start_matches('*').trim_start_matches("[]").trim_start_matches("map[string]");
            assert!(
                SCALARS.contains(&target) || table.messages.contains_key(target),
                "{name}: field `{line}` refers to an unknown type"
            );
        }
    }
    for (_, _, name) in &table.kinds {
        assert!(table.messages.contains_key(name), "kind message {name} is missing");
    }
    assert!(table.untagged.is_empty(), "fields without a protobuf tag: {:?}", table.untagged);

    let mut out = String::from(
        "# The protobuf schemas of the built-in kinds, for decoding request bodies (see protobuf/mod.rs).\n\
         # Generated by protobuf::generate (UPDATE_PROTOBUF_SCHEMA=1 cargo test -p apimachinery protobuf -- --ignored);\n\
         # do not edit.\n\
         # kind <apiVersion or *> <kind> <message>\n\
         # message <name> [special form]\n\
         #  <field number> <JSON name or ,inline> <*T | []T | map[string]T | T> [omitempty]\n",
    );
    for (api_version, kind, name) in &table.kinds {
        writeln!(out, "kind {api_version} {kind} {name}").unwrap();
    }
    for (name, (suffix, lines)) in &table.messages {
        writeln!(out, "message {name}{suffix}").unwrap();
        for line in lines {
            writeln!(out, " {line}").unwrap();
        }
    }
    Some(out)
}

const SCALARS: &[&str] = &["bool", "int32", "int64", "uint32", "uint64", "double", "string", "bytes"];

fn apply_supplement(table: &mut Table) {
    let mut current: Option<String> = None;
    for line in SUPPLEMENT.lines() {
        if let Some(field) = line.strip_prefix(' ') {
            let name = current.as_ref().expect("field before a message");
            let lines = &mut table.messages.get_mut(name).unwrap().1;
            let number = field.split(' ').next().unwrap();
            assert!(!lines.iter().any(|l| l.split(' ').next() == Some(number)), "{name} already has field {number}");
            lines.push(field.to_owned());
        } else if let Some(name) = line.strip_prefix("message ") {
            assert!(table.messages.insert(name.to_owned(), (String::new(), Vec::new())).is_none(), "{name} exists");
            current = Some(name.to_owned());
        } else if let Some(name) = line.strip_prefix("extend ") {
            assert!(table.messages.contains_key(name), "{name} is not in the binaries");
            current = Some(name.to_owned());
        }
    }
    for (_, (suffix, lines)) in table.messages.iter_mut() {
        if suffix.is_empty() {
            lines.sort_by_key(|l| l.split(' ').next().unwrap().parse::<u32>().unwrap());
        }
    }
}

#[test]
#[ignore = "reads the kubectl and anthoscli binaries; run to regenerate schema.txt"]
fn schema_matches_go_binaries() {
    let Some(generated) = generate() else {
        eprintln!("skipped: {KUBECTL} or {ANTHOSCLI} is missing");
        return;
    };
    if std::env::var_os("UPDATE_PROTOBUF_SCHEMA").is_some() {
        std::fs::write(SCHEMA_PATH, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(SCHEMA_PATH).unwrap();
    assert!(committed == generated, "schema.txt is stale: rerun with UPDATE_PROTOBUF_SCHEMA=1");
}
