//! A pickle virtual machine that builds an inert object tree.
//!
//! It understands the binary opcodes of protocols 2–5 (everything `torch.save`
//! emits and the rest of the binary set), never imports or calls anything:
//! `GLOBAL`/`STACK_GLOBAL` resolve against a fixed whitelist ([`classify`])
//! into named, opaque [`Global`]s, and `REDUCE`/`NEWOBJ`/`BUILD` record *what
//! would have been called* as an [`Object`]. Only a few callables are
//! interpreted, because their result is plain data: `collections.OrderedDict`
//! and `set`/`frozenset` (containers), the `torch.*Storage` persistent ids
//! ([`StorageRef`]) and `torch._utils._rebuild_tensor_v2`/`_rebuild_parameter`
//! ([`TensorRef`], storage metadata only; the bytes are read in
//! [`super::torch`]).
//!
//! ## Sharing and cycles
//! The machine works on an arena: the memo stores node indices, so a container
//! referenced twice (`BINPUT` then `BINGET`) is one node, and later
//! `APPEND`/`SETITEM`/`BUILD` on it are seen through every reference (unlike a
//! memo that copies the value at `BINPUT` time). At `STOP` the arena is frozen
//! into [`Value`]s whose containers are `Arc`s: shared nodes stay shared, each
//! node is converted once, and a reference from a node back to one of its own
//! ancestors (a cycle) becomes [`Value::Recursive`].
//!
//! ## Limits
//! Every opcode creates at most one node and reads at least one byte, so the
//! arena, memo and stack are bounded by the input length; lengths in the input
//! (`BINUNICODE8`, `LONG4`, `FRAME`, …) are checked against the remaining
//! bytes before anything is allocated. `MARK` nesting and the depth of the
//! frozen tree are limited to [`MAX_DEPTH`]; the freeze recursion is bounded by
//! it too, so no input can overflow the stack.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::torch::{DType, StorageRef, TensorRef};
use crate::error::QuantizeError;

/// Deepest nesting of containers (and of `MARK`s) accepted.
pub const MAX_DEPTH: usize = 1000;

/// Most dimensions of a tensor.
pub const MAX_DIMS: usize = 64;

fn err(msg: impl Into<String>) -> QuantizeError {
    QuantizeError::Checkpoint(format!("pickle: {}", msg.into()))
}

/// A module-qualified global name (`torch.nn.modules.conv.Conv2d`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Global {
    /// Module path (`builtins` for Python 2's `__builtin__`).
    pub module: String,
    /// Name inside the module.
    pub name: String,
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// What the whitelist lets a global be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalKind {
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`.
    RebuildParameterWithState,
    /// A typed storage class such as `torch.HalfStorage`.
    Storage(DType),
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `builtins.set`.
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// A class or constant kept only by name: `torch.nn.modules.*`,
    /// `ultralytics.*`, `torch.Size`, `torch.device`, dtypes such as
    /// `torch.float16`.
    Opaque,
}

/// Classifies a global against the whitelist; anything else is an error
/// naming it. `__builtin__` (Python 2) is read as `builtins`.
pub fn classify(module: &str, name: &str) -> Result<GlobalKind, QuantizeError> {
    let kind = match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Some(GlobalKind::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(GlobalKind::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Some(GlobalKind::RebuildParameterWithState)
        }
        ("torch", n) if n.ends_with("Storage") => {
            DType::from_storage_class(n).map(GlobalKind::Storage)
        }
        ("collections", "OrderedDict") => Some(GlobalKind::OrderedDict),
        ("builtins", "set") => Some(GlobalKind::Set),
        ("builtins", "frozenset") => Some(GlobalKind::FrozenSet),
        ("torch", "Size" | "device") => Some(GlobalKind::Opaque),
        ("torch", n) if DType::from_torch_name(n).is_some() => Some(GlobalKind::Opaque),
        (m, n)
            if is_class_name(n)
                && (m.starts_with("torch.nn.modules.")
                    || m == "ultralytics"
                    || m.starts_with("ultralytics.")) =>
        {
            Some(GlobalKind::Opaque)
        }
        _ => None,
    };
    kind.ok_or_else(|| err(format!("global `{module}.{name}` is not allowed")))
}

/// A Python identifier (no dots, no dunder names).
fn is_class_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with("__")
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with(|c: char| c.is_ascii_digit())
}

/// A dict (or `OrderedDict`): entries in insertion order, keys unique.
///
/// Keys are deduplicated for `None`, `bool`, `int`, `float` (by bits), `str`
/// and `bytes`; `True` and `1` are distinct keys here, unlike in Python.
#[derive(Clone, Default)]
pub struct Dict {
    /// Whether it was a `collections.OrderedDict`.
    pub ordered: bool,
    /// `(key, value)` pairs.
    pub entries: Vec<(Value, Value)>,
}

impl Dict {
    /// The value under string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The value under integer key `key`.
    pub fn get_int(&self, key: i64) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Int(i) if *i == key))
            .map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

/// What a `REDUCE` or `NEWOBJ` would have built: the class (or callable),
/// its arguments and the `BUILD` state, nothing executed.
#[derive(Clone)]
pub struct Object {
    /// The callable.
    pub class: Global,
    /// Its positional arguments (a tuple).
    pub args: Value,
    /// Keyword arguments from `NEWOBJ_EX` (a dict), else `None`.
    pub kwargs: Option<Value>,
    /// The last `BUILD` state (for modules: their `__dict__`).
    pub state: Option<Value>,
    /// Built by `NEWOBJ` (`cls.__new__(cls, *args)`) rather than `REDUCE`.
    pub newobj: bool,
}

impl Object {
    /// The `BUILD` state as a dict (a module's attributes).
    pub fn state_dict(&self) -> Option<&Dict> {
        self.state.as_ref().and_then(Value::as_dict)
    }

    /// Attribute `name` from the `BUILD` state dict.
    pub fn attr(&self, name: &str) -> Option<&Value> {
        self.state_dict().and_then(|d| d.get(name))
    }
}

/// An inert pickled value.
#[derive(Clone)]
#[non_exhaustive]
pub enum Value {
    /// `None`.
    None,
    /// `True`/`False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer: little-endian two's complement bytes.
    BigInt(Arc<[u8]>),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(Arc<str>),
    /// `bytes` or `bytearray`.
    Bytes(Arc<[u8]>),
    /// A list.
    List(Arc<[Value]>),
    /// A tuple.
    Tuple(Arc<[Value]>),
    /// A `set` or `frozenset` (items in pickle order).
    Set(Arc<[Value]>),
    /// A dict or `OrderedDict`.
    Dict(Arc<Dict>),
    /// A whitelisted global used as a value (a class, `torch.float16`).
    Global(Arc<Global>),
    /// An object built by `REDUCE`/`NEWOBJ` (an `nn.Module`, `torch.Size`, …).
    Object(Arc<Object>),
    /// A tensor or parameter: its storage and layout.
    Tensor(Arc<TensorRef>),
    /// A storage persistent id (normally only seen inside a tensor).
    Storage(Arc<StorageRef>),
    /// A reference to a container that encloses it (a cycle), cut here.
    Recursive,
}

impl Value {
    /// For a dict: the value under string key `key`; for an object: its
    /// attribute `key` (from the `BUILD` state).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key),
            Value::Object(o) => o.attr(key),
            _ => None,
        }
    }

    /// Whether this is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int` that fits in 64 bits (not a `bool`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float value of a `float` or an `int`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items of a list, tuple or set.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => Some(v),
            _ => None,
        }
    }

    /// The dict, if this is a dict or `OrderedDict`.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The object, if this was built by `REDUCE`/`NEWOBJ`.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The tensor, if this is one.
    pub fn as_tensor(&self) -> Option<&TensorRef> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The class of an object, or the global itself.
    pub fn class(&self) -> Option<&Global> {
        match self {
            Value::Object(o) => Some(&o.class),
            Value::Global(g) => Some(g),
            _ => None,
        }
    }

    /// A short description of the kind of value (`dict`, `tensor`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Object(_) => "object",
            Value::Tensor(_) => "tensor",
            Value::Storage(_) => "storage",
            Value::Recursive => "recursive reference",
        }
    }
}

/// `Debug` prints at most this many nodes (shared nodes repeat, so a small
/// DAG could otherwise print exponentially much).
const DEBUG_BUDGET: usize = 20_000;

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut budget = DEBUG_BUDGET;
        debug_value(self, f, &mut budget)
    }
}

fn debug_seq(
    open: &str,
    close: &str,
    items: &[Value],
    f: &mut fmt::Formatter<'_>,
    budget: &mut usize,
) -> fmt::Result {
    f.write_str(open)?;
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        debug_value(v, f, budget)?;
    }
    f.write_str(close)
}

fn debug_value(v: &Value, f: &mut fmt::Formatter<'_>, budget: &mut usize) -> fmt::Result {
    if *budget == 0 {
        return f.write_str("…");
    }
    *budget -= 1;
    match v {
        Value::None => f.write_str("None"),
        Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
        Value::Int(i) => write!(f, "{i}"),
        Value::BigInt(b) => write!(f, "<int of {} bytes>", b.len()),
        Value::Float(x) => write!(f, "{x:?}"),
        Value::Str(s) => write!(f, "{:?}", &**s),
        Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
        Value::List(items) => debug_seq("[", "]", items, f, budget),
        Value::Tuple(items) => debug_seq("(", ")", items, f, budget),
        Value::Set(items) => debug_seq("{", "}", items, f, budget),
        Value::Dict(d) => {
            f.write_str(if d.ordered { "OrderedDict{" } else { "{" })?;
            for (i, (k, v)) in d.entries.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                debug_value(k, f, budget)?;
                f.write_str(": ")?;
                debug_value(v, f, budget)?;
            }
            f.write_str("}")
        }
        Value::Global(g) => write!(f, "{g}"),
        Value::Object(o) => {
            write!(f, "{}", o.class)?;
            debug_value(&o.args, f, budget)?;
            if let Some(s) = &o.state {
                f.write_str(".__setstate__(")?;
                debug_value(s, f, budget)?;
                f.write_str(")")?;
            }
            Ok(())
        }
        Value::Tensor(t) => write!(f, "{t:?}"),
        Value::Storage(s) => write!(f, "{s:?}"),
        Value::Recursive => f.write_str("<recursion>"),
    }
}

// ---------------------------------------------------------------------------
// The machine.

type Id = usize;

enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Arc<[u8]>),
    Float(f64),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Set(Vec<Id>),
    Dict {
        ordered: bool,
        items: Vec<(Id, Id)>,
    },
    Global(Arc<Global>, GlobalKind),
    Object {
        class: Arc<Global>,
        args: Id,
        kwargs: Option<Id>,
        state: Option<Id>,
        newobj: bool,
    },
    Tensor(Arc<TensorRef>),
    Storage(Arc<StorageRef>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::None => "None",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::BigInt(_) => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Set(_) => "set",
            Node::Dict { .. } => "dict",
            Node::Global(..) => "global",
            Node::Object { .. } => "object",
            Node::Tensor(_) => "tensor",
            Node::Storage(_) => "storage",
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed (for messages).
    op_at: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    /// Shared constant nodes.
    none: Id,
    t: Id,
    f: Id,
}

/// Runs the pickle in `data` and returns the value `STOP` leaves.
///
/// Bytes after `STOP` are ignored (as Python does). Errors are
/// [`QuantizeError::Checkpoint`] messages that name the offending opcode,
/// offset or global.
pub fn unpickle(data: &[u8]) -> Result<Value, QuantizeError> {
    let mut m = Machine {
        data,
        pos: 0,
        op_at: 0,
        nodes: vec![Node::None, Node::Bool(true), Node::Bool(false)],
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        none: 0,
        t: 1,
        f: 2,
    };
    let root = m.run()?;
    Freezer::new(&m.nodes).freeze(root, 0)
}

impl<'a> Machine<'a> {
    fn at(&self, msg: impl fmt::Display) -> QuantizeError {
        err(format!("{msg} (opcode at offset {})", self.op_at))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], QuantizeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                self.at(format!(
                    "truncated: needs {n} bytes, {} left",
                    self.data.len() - self.pos
                ))
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn take_arr<const N: usize>(&mut self) -> Result<[u8; N], QuantizeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A length read from the input, checked against the remaining bytes
    /// before anything is allocated.
    fn len_ok(&self, n: u64) -> Result<usize, QuantizeError> {
        let left = self.data.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| self.at(format!("length {n} exceeds the {left} bytes left")))
    }

    fn push_node(&mut self, n: Node) -> Result<Id, QuantizeError> {
        // Each opcode adds at most one node and reads at least one byte.
        if self.nodes.len() > self.data.len() + 8 {
            return Err(self.at("more objects than input bytes"));
        }
        self.nodes.push(n);
        Ok(self.nodes.len() - 1)
    }

    fn push(&mut self, n: Node) -> Result<(), QuantizeError> {
        let id = self.push_node(n)?;
        self.stack.push(id);
        Ok(())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id, QuantizeError> {
        if self.stack.len() <= self.floor() {
            return Err(self.at("stack underflow"));
        }
        Ok(self.stack.pop().unwrap_or(0))
    }

    fn top(&self) -> Result<Id, QuantizeError> {
        if self.stack.len() <= self.floor() {
            return Err(self.at("stack underflow"));
        }
        Ok(self.stack[self.stack.len() - 1])
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, QuantizeError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.at("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    fn str_of(&self, id: Id) -> Option<Arc<str>> {
        match &self.nodes[id] {
            Node::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<(), QuantizeError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), QuantizeError> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.at(format!("memo key {key} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    fn push_str(&mut self, n: u64) -> Result<(), QuantizeError> {
        let n = self.len_ok(n)?;
        let raw = self.take(n)?;
        let s = std::str::from_utf8(raw).map_err(|_| self.at("string is not valid UTF-8"))?;
        self.push(Node::Str(Arc::from(s)))
    }

    fn push_bytes(&mut self, n: u64) -> Result<(), QuantizeError> {
        let n = self.len_ok(n)?;
        let raw = self.take(n)?;
        self.push(Node::Bytes(Arc::from(raw)))
    }

    fn push_long(&mut self, n: u64) -> Result<(), QuantizeError> {
        let n = self.len_ok(n)?;
        let raw = self.take(n)?;
        self.push(long_node(raw))
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), QuantizeError> {
        let module = match module {
            "__builtin__" => "builtins",
            m => m,
        };
        let kind = classify(module, name).map_err(|e| match e {
            QuantizeError::Checkpoint(m) => self.at(m.trim_start_matches("pickle: ")),
            e => e,
        })?;
        let g = Arc::new(Global {
            module: module.to_owned(),
            name: name.to_owned(),
        });
        self.push(Node::Global(g, kind))
    }

    /// Reads a text line (for `GLOBAL`): at most 256 bytes before `\n`.
    fn line(&mut self) -> Result<&'a str, QuantizeError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .take(257)
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.at("GLOBAL name is unterminated or longer than 256 bytes"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.at("GLOBAL name is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn run(&mut self) -> Result<Id, QuantizeError> {
        loop {
            self.op_at = self.pos;
            let op = self.take_arr::<1>().map_err(|_| {
                err(format!(
                    "pickle ends at offset {} without a STOP opcode",
                    self.data.len()
                ))
            })?[0];
            match op {
                0x80 => {
                    // PROTO
                    let p = self.take_arr::<1>()?[0];
                    if p > 5 {
                        return Err(self.at(format!("unsupported pickle protocol {p}")));
                    }
                }
                0x95 => {
                    // FRAME: only a length hint.
                    let n = u64::from_le_bytes(self.take_arr()?);
                    self.len_ok(n)?;
                }
                b'.' => return self.pop(),
                b'(' => {
                    if self.marks.len() >= MAX_DEPTH {
                        return Err(self.at(format!("MARKs nested deeper than {MAX_DEPTH}")));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'N' => self.stack.push(self.none),
                0x88 => self.stack.push(self.t),
                0x89 => self.stack.push(self.f),
                b'J' => {
                    let v = i32::from_le_bytes(self.take_arr()?);
                    self.push(Node::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.take_arr::<1>()?[0];
                    self.push(Node::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_arr()?);
                    self.push(Node::Int(i64::from(v)))?;
                }
                0x8a => {
                    let n = self.take_arr::<1>()?[0];
                    self.push_long(u64::from(n))?;
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.take_arr()?);
                    if n < 0 {
                        return Err(self.at("LONG4 with a negative length"));
                    }
                    self.push_long(n as u64)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take_arr()?);
                    self.push(Node::Float(v))?;
                }
                0x8c => {
                    let n = self.take_arr::<1>()?[0];
                    self.push_str(u64::from(n))?;
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.take_arr()?);
                    self.push_str(u64::from(n))?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.take_arr()?);
                    self.push_str(n)?;
                }
                b'C' => {
                    let n = self.take_arr::<1>()?[0];
                    self.push_bytes(u64::from(n))?;
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.take_arr()?);
                    self.push_bytes(u64::from(n))?;
                }
                0x8e | 0x96 => {
                    // BINBYTES8, BYTEARRAY8
                    let n = u64::from_le_bytes(self.take_arr()?);
                    self.push_bytes(n)?;
                }
                b'}' => self.push(Node::Dict {
                    ordered: false,
                    items: Vec::new(),
                })?,
                b']' => self.push(Node::List(Vec::new()))?,
                b')' => self.push(Node::Tuple(Vec::new()))?,
                0x8f => self.push(Node::Set(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.at("DICT with an odd number of items"));
                    }
                    let d = self.push_node(Node::Dict {
                        ordered: false,
                        items: Vec::new(),
                    })?;
                    self.set_items(d, &items)?;
                    self.stack.push(d);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < self.floor() + n {
                        return Err(self.at("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items))?;
                }
                b'q' => {
                    let k = self.take_arr::<1>()?[0];
                    self.memo_put(u64::from(k))?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.take_arr()?);
                    self.memo_put(u64::from(k))?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.take_arr::<1>()?[0];
                    self.memo_get(u64::from(k))?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.take_arr()?);
                    self.memo_get(u64::from(k))?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.append(l, &[v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.append(l, &items)?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let s = self.top()?;
                    match &mut self.nodes[s] {
                        Node::Set(v) => v.extend_from_slice(&items),
                        n => {
                            let k = n.kind();
                            return Err(self.at(format!("ADDITEMS to a {k}")));
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, &[k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.at("SETITEMS with an odd number of items"));
                    }
                    let d = self.top()?;
                    self.set_items(d, &items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name))
                    else {
                        return Err(self.at("STACK_GLOBAL needs two strings"));
                    };
                    self.global(&module, &name)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let id = self.call(f, args, None, false)?;
                    self.stack.push(id);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let id = self.call(cls, args, None, true)?;
                    self.stack.push(id);
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    if !matches!(self.nodes[kwargs], Node::Dict { .. }) {
                        return Err(self.at("NEWOBJ_EX keyword arguments are not a dict"));
                    }
                    let id = self.call(cls, args, Some(kwargs), true)?;
                    self.stack.push(id);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    let none = self.none;
                    match &mut self.nodes[obj] {
                        Node::Object { state: s, .. } => *s = Some(state),
                        // `OrderedDict` and friends reduce with a `None` state.
                        Node::Dict { .. } | Node::Set(_) | Node::List(_) if state == none => {}
                        n => {
                            let k = n.kind();
                            return Err(self.at(format!("BUILD on a {k}")));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let id = self.persistent(pid)?;
                    self.stack.push(id);
                }
                _ => {
                    return Err(err(format!(
                        "unsupported pickle opcode 0x{op:02x} ({}) at offset {}",
                        opcode_name(op),
                        self.op_at
                    )));
                }
            }
        }
    }

    fn append(&mut self, l: Id, items: &[Id]) -> Result<(), QuantizeError> {
        match &mut self.nodes[l] {
            Node::List(v) => {
                v.extend_from_slice(items);
                Ok(())
            }
            n => {
                let k = n.kind();
                Err(self.at(format!("APPEND to a {k}")))
            }
        }
    }

    fn set_items(&mut self, d: Id, kv: &[Id]) -> Result<(), QuantizeError> {
        match &mut self.nodes[d] {
            Node::Dict { items, .. } => {
                items.extend(kv.chunks_exact(2).map(|c| (c[0], c[1])));
                Ok(())
            }
            n => {
                let k = n.kind();
                Err(self.at(format!("SETITEM on a {k}")))
            }
        }
    }

    fn tuple_items(&self, id: Id, what: &Global) -> Result<Vec<Id>, QuantizeError> {
        match &self.nodes[id] {
            Node::Tuple(v) => Ok(v.clone()),
            n => Err(self.at(format!(
                "`{what}` arguments are a {}, not a tuple",
                n.kind()
            ))),
        }
    }

    /// `REDUCE` (`newobj == false`) or `NEWOBJ`: only the whitelisted
    /// data-building callables are interpreted; classes become [`Node::Object`].
    fn call(
        &mut self,
        f: Id,
        args: Id,
        kwargs: Option<Id>,
        newobj: bool,
    ) -> Result<Id, QuantizeError> {
        let (g, kind) = match &self.nodes[f] {
            Node::Global(g, k) => (g.clone(), *k),
            n => {
                return Err(self.at(format!(
                    "call of a {} (only globals are callable)",
                    n.kind()
                )));
            }
        };
        let a = self.tuple_items(args, &g)?;
        if kwargs.is_some() && kind != GlobalKind::Opaque {
            return Err(self.at(format!("`{g}` called with keyword arguments")));
        }
        match kind {
            GlobalKind::OrderedDict => {
                let mut items = Vec::new();
                match a.as_slice() {
                    [] => {}
                    [pairs] => {
                        // OrderedDict([(k, v), ...])
                        let list = match &self.nodes[*pairs] {
                            Node::List(v) | Node::Tuple(v) => v.clone(),
                            _ => return Err(self.at("OrderedDict argument is not a list")),
                        };
                        for p in list {
                            match &self.nodes[p] {
                                Node::Tuple(kv) | Node::List(kv) if kv.len() == 2 => {
                                    items.push((kv[0], kv[1]))
                                }
                                _ => return Err(self.at("OrderedDict item is not a pair")),
                            }
                        }
                    }
                    _ => return Err(self.at("OrderedDict takes at most one argument")),
                }
                self.push_node(Node::Dict {
                    ordered: true,
                    items,
                })
            }
            GlobalKind::Set | GlobalKind::FrozenSet => {
                let items = match a.as_slice() {
                    [] => Vec::new(),
                    [one] => match &self.nodes[*one] {
                        Node::List(v) | Node::Tuple(v) | Node::Set(v) => v.clone(),
                        _ => return Err(self.at(format!("`{g}` argument is not a list"))),
                    },
                    _ => return Err(self.at(format!("`{g}` takes at most one argument"))),
                };
                self.push_node(Node::Set(items))
            }
            GlobalKind::RebuildTensorV2 if !newobj => {
                let t = self.rebuild_tensor(&a)?;
                self.push_node(Node::Tensor(Arc::new(t)))
            }
            GlobalKind::RebuildParameter | GlobalKind::RebuildParameterWithState if !newobj => {
                let want = if kind == GlobalKind::RebuildParameter {
                    3
                } else {
                    4
                };
                if a.len() != want {
                    return Err(self.at(format!("`{g}` takes {want} arguments, got {}", a.len())));
                }
                let mut t = match &self.nodes[a[0]] {
                    Node::Tensor(t) => (**t).clone(),
                    n => return Err(self.at(format!("`{g}` of a {}, not a tensor", n.kind()))),
                };
                t.requires_grad = match &self.nodes[a[1]] {
                    Node::Bool(b) => *b,
                    _ => return Err(self.at(format!("`{g}` requires_grad is not a bool"))),
                };
                t.parameter = true;
                self.push_node(Node::Tensor(Arc::new(t)))
            }
            GlobalKind::Opaque => self.push_node(Node::Object {
                class: g,
                args,
                kwargs,
                state: None,
                newobj,
            }),
            _ => Err(self.at(format!(
                "`{g}` cannot be called {}",
                if newobj { "by NEWOBJ" } else { "this way" }
            ))),
        }
    }

    fn int_of(&self, id: Id, what: &str) -> Result<i64, QuantizeError> {
        match &self.nodes[id] {
            Node::Int(i) => Ok(*i),
            n => Err(self.at(format!("{what} is a {}, not an int", n.kind()))),
        }
    }

    fn usize_of(&self, id: Id, what: &str) -> Result<usize, QuantizeError> {
        let i = self.int_of(id, what)?;
        usize::try_from(i).map_err(|_| self.at(format!("{what} {i} is negative or too large")))
    }

    fn dims(&self, id: Id, what: &str) -> Result<Vec<usize>, QuantizeError> {
        let items = match &self.nodes[id] {
            Node::Tuple(v) | Node::List(v) => v,
            // `torch.Size((..))` objects.
            Node::Object { args, class, .. } if class.module == "torch" && class.name == "Size" => {
                match &self.nodes[*args] {
                    Node::Tuple(a) if a.len() == 1 => return self.dims(a[0], what),
                    _ => return Err(self.at(format!("tensor {what} is a malformed torch.Size"))),
                }
            }
            n => return Err(self.at(format!("tensor {what} is a {}, not a tuple", n.kind()))),
        };
        if items.len() > MAX_DIMS {
            return Err(self.at(format!("tensor with {} dimensions", items.len())));
        }
        items.iter().map(|&i| self.usize_of(i, what)).collect()
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride,
    /// requires_grad, backward_hooks[, metadata])`.
    fn rebuild_tensor(&self, a: &[Id]) -> Result<TensorRef, QuantizeError> {
        if !(6..=7).contains(&a.len()) {
            return Err(self.at(format!(
                "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                a.len()
            )));
        }
        let storage = match &self.nodes[a[0]] {
            Node::Storage(s) => s.clone(),
            n => {
                return Err(self.at(format!(
                    "_rebuild_tensor_v2 storage is a {}, not a storage",
                    n.kind()
                )));
            }
        };
        let offset = self.usize_of(a[1], "storage offset")?;
        let shape = self.dims(a[2], "size")?;
        let stride = self.dims(a[3], "stride")?;
        if shape.len() != stride.len() {
            return Err(self.at(format!(
                "tensor size has {} dimensions but stride has {}",
                shape.len(),
                stride.len()
            )));
        }
        let requires_grad = match &self.nodes[a[4]] {
            Node::Bool(b) => *b,
            _ => return Err(self.at("_rebuild_tensor_v2 requires_grad is not a bool")),
        };
        Ok(TensorRef {
            storage,
            offset,
            shape,
            stride,
            requires_grad,
            parameter: false,
        })
    }

    /// `BINPERSID`: torch's `('storage', StorageClass, key, location, numel)`.
    fn persistent(&mut self, pid: Id) -> Result<Id, QuantizeError> {
        let items = match &self.nodes[pid] {
            Node::Tuple(v) => v.clone(),
            n => return Err(self.at(format!("persistent id is a {}, not a tuple", n.kind()))),
        };
        let [tag, class, key, location, numel] = items.as_slice() else {
            return Err(self.at(format!(
                "persistent id has {} fields, torch storages have 5",
                items.len()
            )));
        };
        if self.str_of(*tag).as_deref() != Some("storage") {
            return Err(self.at("persistent id is not a torch storage"));
        }
        let dtype = match &self.nodes[*class] {
            Node::Global(_, GlobalKind::Storage(d)) => *d,
            Node::Global(g, _) => return Err(self.at(format!("`{g}` is not a storage class"))),
            n => return Err(self.at(format!("storage class is a {}", n.kind()))),
        };
        let key = self
            .str_of(*key)
            .ok_or_else(|| self.at("storage key is not a string"))?;
        if key.is_empty()
            || key.len() > 64
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(self.at(format!("storage key {key:?} is not a plain record name")));
        }
        let location = self
            .str_of(*location)
            .ok_or_else(|| self.at("storage location is not a string"))?;
        let numel = self.usize_of(*numel, "storage size")?;
        self.push_node(Node::Storage(Arc::new(StorageRef {
            dtype,
            key: key.to_string(),
            location: location.to_string(),
            numel,
        })))
    }
}

/// `LONG1`/`LONG4` payload: little-endian two's complement.
fn long_node(raw: &[u8]) -> Node {
    if raw.is_empty() {
        return Node::Int(0);
    }
    let neg = raw[raw.len() - 1] & 0x80 != 0;
    let fill = if neg { 0xFF } else { 0 };
    // Drop redundant sign-extension bytes.
    let mut n = raw.len();
    while n > 1 && raw[n - 1] == fill && (raw[n - 2] & 0x80 != 0) == neg {
        n -= 1;
    }
    if n <= 8 {
        let mut b = [fill; 8];
        b[..n].copy_from_slice(&raw[..n]);
        Node::Int(i64::from_le_bytes(b))
    } else {
        Node::BigInt(Arc::from(&raw[..n]))
    }
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'I' => "INT, protocol 0",
        b'L' => "LONG, protocol 0",
        b'F' => "FLOAT, protocol 0",
        b'S' => "STRING, protocol 0",
        b'U' => "SHORT_BINSTRING, Python 2",
        b'T' => "BINSTRING, Python 2",
        b'V' => "UNICODE, protocol 0",
        b'P' => "PERSID, protocol 0",
        b'p' => "PUT, protocol 0",
        b'g' => "GET, protocol 0",
        b'i' => "INST, protocol 0",
        b'o' => "OBJ, protocol 1",
        0x82..=0x84 => "EXT, extension registry",
        0x97 => "NEXT_BUFFER, out-of-band data",
        0x98 => "READONLY_BUFFER, out-of-band data",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------
// Freezing the arena into `Value`s.

/// Keys deduplicated in dicts.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    None,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
}

fn key_of(v: &Value) -> Option<Key> {
    Some(match v {
        Value::None => Key::None,
        Value::Bool(b) => Key::Bool(*b),
        Value::Int(i) => Key::Int(*i),
        Value::Float(f) => Key::Float(f.to_bits()),
        Value::Str(s) => Key::Str(s.clone()),
        Value::Bytes(b) => Key::Bytes(b.clone()),
        _ => return None,
    })
}

const UNSEEN: u8 = 0;
const ACTIVE: u8 = 1;
const DONE: u8 = 2;

struct Freezer<'n> {
    nodes: &'n [Node],
    state: Vec<u8>,
    done: Vec<Option<Value>>,
}

impl<'n> Freezer<'n> {
    fn new(nodes: &'n [Node]) -> Self {
        Freezer {
            nodes,
            state: vec![UNSEEN; nodes.len()],
            done: vec![None; nodes.len()],
        }
    }

    fn seq(&mut self, ids: &[Id], depth: usize) -> Result<Arc<[Value]>, QuantizeError> {
        ids.iter()
            .map(|&i| self.freeze(i, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Arc::from)
    }

    fn freeze(&mut self, id: Id, depth: usize) -> Result<Value, QuantizeError> {
        match self.state[id] {
            DONE => return Ok(self.done[id].clone().unwrap_or(Value::None)),
            ACTIVE => return Ok(Value::Recursive),
            _ => {}
        }
        if depth > MAX_DEPTH {
            return Err(err(format!("objects nested deeper than {MAX_DEPTH}")));
        }
        self.state[id] = ACTIVE;
        let v = match &self.nodes[id] {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::BigInt(b) => Value::BigInt(b.clone()),
            Node::Float(f) => Value::Float(*f),
            Node::Str(s) => Value::Str(s.clone()),
            Node::Bytes(b) => Value::Bytes(b.clone()),
            Node::List(v) => Value::List(self.seq(v, depth)?),
            Node::Tuple(v) => Value::Tuple(self.seq(v, depth)?),
            Node::Set(v) => Value::Set(self.seq(v, depth)?),
            Node::Dict { ordered, items } => {
                let mut entries: Vec<(Value, Value)> = Vec::with_capacity(items.len());
                let mut index: HashMap<Key, usize> = HashMap::new();
                for &(k, v) in items {
                    let k = self.freeze(k, depth + 1)?;
                    let v = self.freeze(v, depth + 1)?;
                    match key_of(&k) {
                        Some(key) => match index.get(&key) {
                            Some(&at) => entries[at].1 = v,
                            None => {
                                index.insert(key, entries.len());
                                entries.push((k, v));
                            }
                        },
                        None => entries.push((k, v)),
                    }
                }
                Value::Dict(Arc::new(Dict {
                    ordered: *ordered,
                    entries,
                }))
            }
            Node::Global(g, _) => Value::Global(g.clone()),
            Node::Object {
                class,
                args,
                kwargs,
                state,
                newobj,
            } => {
                let args = self.freeze(*args, depth + 1)?;
                let kwargs = kwargs.map(|k| self.freeze(k, depth + 1)).transpose()?;
                let state = state.map(|s| self.freeze(s, depth + 1)).transpose()?;
                Value::Object(Arc::new(Object {
                    class: (**class).clone(),
                    args,
                    kwargs,
                    state,
                    newobj: *newobj,
                }))
            }
            Node::Tensor(t) => Value::Tensor(t.clone()),
            Node::Storage(s) => Value::Storage(s.clone()),
        };
        self.state[id] = DONE;
        self.done[id] = Some(v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &[u8]) -> Result<Value, String> {
        unpickle(p).map_err(|e| e.to_string())
    }

    /// `pickle.dumps({'a': [1, -2, 3.5, True, None], 'b': (b'xy', 'é')}, protocol=3)`
    const P3: &[u8] = b"\x80\x03}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00\x88NeX\x01\x00\x00\x00bq\x03C\x02xyq\x04X\x02\x00\x00\x00\xc3\xa9q\x05\x86q\x06u.";
    /// The same plus `'c': {1: 'x'}` at protocol 5 (FRAME, MEMOIZE, SHORT_BINUNICODE).
    const P5: &[u8] = b"\x80\x05\x95<\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00\x88Ne\x8c\x01b\x94C\x02xy\x94\x8c\x02\xc3\xa9\x94\x86\x94\x8c\x01c\x94}\x94K\x01\x8c\x01x\x94su.";

    #[test]
    fn scalars_and_containers() {
        for p in [P3, P5] {
            let v = run(p).unwrap();
            let d = v.as_dict().unwrap();
            let a = d.get("a").unwrap().as_seq().unwrap();
            assert_eq!(a[0].as_int(), Some(1));
            assert_eq!(a[1].as_int(), Some(-2));
            assert_eq!(a[2].as_f64(), Some(3.5));
            assert_eq!(a[3].as_bool(), Some(true));
            assert!(a[4].is_none());
            let b = v.get("b").unwrap().as_seq().unwrap();
            assert!(matches!(&b[0], Value::Bytes(x) if &x[..] == b"xy"));
            assert_eq!(b[1].as_str(), Some("é"));
        }
        let c = run(P5).unwrap();
        let c = c.get("c").unwrap().as_dict().unwrap();
        assert_eq!(c.get_int(1).and_then(Value::as_str), Some("x"));
    }

    #[test]
    fn ordered_dicts_and_sets() {
        // collections.OrderedDict([('w', 1), ('b', None)]), protocol 2
        let p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02K\x01X\x01\x00\x00\x00bq\x03Nu.";
        let v = run(p).unwrap();
        let d = v.as_dict().unwrap();
        assert!(d.ordered);
        assert_eq!(d.get("w").and_then(Value::as_int), Some(1));
        assert!(d.get("b").unwrap().is_none());
        // {1, 2} at protocols 2 and 4
        for p in [
            &b"\x80\x02c__builtin__\nset\nq\x00]q\x01(K\x01K\x02e\x85q\x02Rq\x03."[..],
            b"\x80\x04\x95\t\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02\x90.",
        ] {
            let v = run(p).unwrap();
            assert!(matches!(&v, Value::Set(s) if s.len() == 2), "{v:?}");
        }
        // Python 3 bytes at protocol 2 go through `_codecs.encode`: not allowed.
        let p = b"\x80\x02c_codecs\nencode\nq\x04X\x02\x00\x00\x00xyq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07R.";
        assert!(
            run(p)
                .unwrap_err()
                .contains("`_codecs.encode` is not allowed")
        );
    }

    #[test]
    fn long1_values() {
        for (bytes, want) in [
            (&b""[..], 0i64),
            (b"\xff", -1),
            (b"\x00\x01", 256),
            (b"\xff\xff\xff\xff\xff\xff\xff\x7f", i64::MAX),
            (b"\x00\x00\x00\x00\x00\x00\x00\x80", i64::MIN),
            (b"\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00", 5),
        ] {
            let mut p = vec![0x80, 2, 0x8a, bytes.len() as u8];
            p.extend_from_slice(bytes);
            p.push(b'.');
            assert_eq!(run(&p).unwrap().as_int(), Some(want), "{bytes:?}");
        }
        let p = b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
        assert!(matches!(run(p).unwrap(), Value::BigInt(_)));
    }

    #[test]
    fn memo_sharing_keeps_contents() {
        // x = {'a': 1}; pickle.dumps([x, x], protocol=2): the dict is memoised
        // empty (BINPUT) and filled afterwards (SETITEM); the second element
        // is a BINGET of it and must see the contents.
        let p = b"\x80\x02]q\x00(}q\x01X\x01\x00\x00\x00aq\x02K\x01sh\x01e.";
        let v = run(p).unwrap();
        let items = v.as_seq().unwrap();
        assert_eq!(items.len(), 2);
        for it in items {
            assert_eq!(it.get("a").and_then(Value::as_int), Some(1));
        }
        // Both elements are one shared node.
        match (&items[0], &items[1]) {
            (Value::Dict(a), Value::Dict(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("not dicts"),
        }
    }

    #[test]
    fn cycles_are_cut() {
        // l = []; l.append(l)
        let p = b"\x80\x02]q\x00h\x00a.";
        let v = run(p).unwrap();
        let items = v.as_seq().unwrap();
        assert!(matches!(items[0], Value::Recursive));
        let _ = format!("{v:?}");
    }

    #[test]
    fn hostile_globals_are_named() {
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("__builtin__", "eval"),
            ("subprocess", "Popen"),
            ("posix", "system"),
            ("torch", "load"),
            ("torch.nn.modules.module", "__getattribute__"),
            ("builtins", "getattr"),
        ] {
            let mut p = b"\x80\x02c".to_vec();
            p.extend_from_slice(format!("{m}\n{n}\n").as_bytes());
            p.extend_from_slice(b"X\x02\x00\x00\x00lsq\x00\x85R.");
            let e = run(&p).unwrap_err();
            let shown = if m == "__builtin__" { "builtins" } else { m };
            assert!(
                e.contains(&format!("global `{shown}.{n}` is not allowed")),
                "{e}"
            );
            // The same through STACK_GLOBAL (protocol 4).
            let mut p = b"\x80\x04".to_vec();
            for s in [m, n] {
                p.push(0x8c);
                p.push(s.len() as u8);
                p.extend_from_slice(s.as_bytes());
            }
            p.extend_from_slice(b"\x93).");
            let e = run(&p).unwrap_err();
            assert!(e.contains("is not allowed"), "{e}");
        }
    }

    #[test]
    fn unknown_opcodes_name_byte_and_offset() {
        let e = run(b"\x80\x02N\xff.").unwrap_err();
        assert!(e.contains("opcode 0xff") && e.contains("offset 3"), "{e}");
        let e = run(b"\x80\x02I1\n.").unwrap_err();
        assert!(e.contains("0x49") && e.contains("protocol 0"), "{e}");
    }

    #[test]
    fn lengths_beyond_the_input_are_rejected_before_allocating() {
        let mut p = b"\x80\x04\x8e".to_vec();
        p.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(run(&p).unwrap_err().contains("exceeds"));
        let mut p = b"\x80\x04\x8d".to_vec();
        p.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(run(&p).unwrap_err().contains("exceeds"));
        let p = b"\x80\x02\x8b\xff\xff\xff\x7f";
        assert!(run(p).unwrap_err().contains("exceeds"));
        let p = b"\x80\x02X\xff\xff\xff\xffab";
        assert!(run(p).unwrap_err().contains("exceeds"));
        let mut p = b"\x80\x04\x95".to_vec();
        p.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(run(&p).unwrap_err().contains("exceeds"));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // 100k MARK + EMPTY_LIST.
        let mut p = b"\x80\x02".to_vec();
        for _ in 0..100_000 {
            p.extend_from_slice(b"(]");
        }
        let e = run(&p).unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
        // 100k TUPLE1: deep without any MARK; fails when frozen.
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 100_000));
        p.push(b'.');
        let e = run(&p).unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
        // Exactly at the limit is fine (and Debug/Drop do not overflow).
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, MAX_DEPTH));
        p.push(b'.');
        let v = run(&p).unwrap();
        assert!(format!("{v:?}").len() > MAX_DEPTH);
    }

    #[test]
    fn exponential_sharing_stays_cheap() {
        // x = None; 60 times: x = (x, x)  — 2^60 leaves if copied.
        let mut p = b"\x80\x02N".to_vec();
        for _ in 0..60 {
            p.extend_from_slice(b"2\x86");
        }
        p.push(b'.');
        let v = run(&p).unwrap();
        assert!(format!("{v:?}").len() < 200_000);
    }

    #[test]
    fn stack_discipline() {
        assert!(run(b"\x80\x02.").unwrap_err().contains("underflow"));
        assert!(run(b"\x80\x02N(a.").unwrap_err().contains("underflow"));
        assert!(run(b"\x80\x02N").unwrap_err().contains("without a STOP"));
        assert!(run(b"\x80\x02h\x05.").unwrap_err().contains("never stored"));
        assert!(run(b"\x80\x02Ne.").unwrap_err().contains("no MARK"));
        assert!(run(b"\x80\x02Nb.").unwrap_err().contains("underflow"));
        assert!(run(b"\x80\x06N.").unwrap_err().contains("protocol 6"));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        for p in [P3, P5] {
            mutate(p);
        }
    }

    fn mutate(p: &[u8]) {
        for n in 0..p.len() {
            assert!(unpickle(&p[..n]).is_err());
        }
        for i in 0..p.len() {
            for x in 0..=255u8 {
                let mut m = p.to_vec();
                m[i] = x;
                let _ = unpickle(&m);
            }
        }
    }
}
