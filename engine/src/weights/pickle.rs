//! A small pickle virtual machine for the subset `torch.save` emits (protocols 2 to 5).
//!
//! Tensors are not materialised here: `torch._utils._rebuild_tensor_v2` yields a [`TensorRef`]
//! naming its storage, so that only the storages a caller selects (the `state_dict`, not the
//! optimizer state) are read from the archive. Unknown classes become opaque [`Value::Object`]s
//! instead of errors, since a Lightning checkpoint's hyper-parameters may hold anything.

use std::cell::RefCell;
use std::rc::Rc;

use tch::Kind;

/// Where a tensor's data lives: an entry `data/<key>` of the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub kind: Kind,
    /// Number of elements of `kind` in the storage.
    pub numel: i64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

pub type Shared<T> = Rc<RefCell<T>>;

/// A class instance the VM does not know: what built it, with which arguments and state.
#[derive(Debug, Clone)]
pub struct Object {
    pub class: String,
    pub args: Value,
    pub state: Option<Value>,
    /// Items set on it by SETITEM(S)/APPEND(S) (dict and list subclasses).
    pub items: Vec<(Value, Value)>,
}

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, little-endian two's complement (e.g. torch's legacy magic).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Rc<Vec<Value>>),
    List(Shared<Vec<Value>>),
    Dict(Shared<Vec<(Value, Value)>>),
    /// `module.name`, from GLOBAL or STACK_GLOBAL.
    Global(String),
    Storage(StorageRef),
    Tensor(TensorRef),
    Object(Shared<Object>),
}

impl Value {
    fn dict(items: Vec<(Value, Value)>) -> Self {
        Value::Dict(Rc::new(RefCell::new(items)))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a dict (or of an object built like one, e.g. an `AttributeDict`).
    pub fn dict_items(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().clone()),
            Value::Object(o) => {
                let o = o.borrow();
                (!o.items.is_empty()).then(|| o.items.clone())
            }
            _ => None,
        }
    }

    /// Looks a string key up in a dict.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.dict_items()?
            .into_iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Object(_) => "object",
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn as_seq(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    fn int_seq(&self) -> Option<Vec<i64>> {
        self.as_seq()?.iter().map(Value::as_int).collect()
    }
}

/// Why unpickling failed; the caller adds the file name.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError(pub String);

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, PickleError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(PickleError(msg.into()))
}

/// The element kind of a legacy typed storage class (`torch.FloatStorage`, ...).
pub fn storage_kind(class: &str) -> Option<Kind> {
    let name = class.strip_prefix("torch.")?;
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" | "UntypedStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        "ComplexFloatStorage" => Kind::ComplexFloat,
        "ComplexDoubleStorage" => Kind::ComplexDouble,
        _ => return None,
    })
}

/// The new (torch >= 2.0) dtype form, e.g. `torch.float32`, when a storage is untyped.
fn dtype_kind(name: &str) -> Option<Kind> {
    Some(match name.strip_prefix("torch.")? {
        "float32" | "float" => Kind::Float,
        "float64" | "double" => Kind::Double,
        "float16" | "half" => Kind::Half,
        "bfloat16" => Kind::BFloat16,
        "int64" | "long" => Kind::Int64,
        "int32" | "int" => Kind::Int,
        "int16" | "short" => Kind::Int16,
        "int8" => Kind::Int8,
        "uint8" => Kind::Uint8,
        "bool" => Kind::Bool,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
enum Slot {
    Mark,
    Val(Value),
}

/// How deeply containers may nest. `torch.save` writes a handful of levels; a crafted file
/// nesting thousands would overflow the stack of whatever walks (or drops) the result.
pub const MAX_DEPTH: u32 = 200;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    memo: std::collections::HashMap<u32, Value>,
    storages: Vec<StorageRef>,
    /// Per live container (by address): its nesting depth, and whether it has been placed
    /// inside another container. A nested container is never changed again, so a parent's
    /// depth, computed when its children are placed, stays right.
    containers: std::collections::HashMap<usize, (u32, bool)>,
    /// Every container made, kept alive so that no address is reused while the VM runs.
    alive: Vec<Value>,
}

/// The address of a container value (None for scalars).
fn container_id(v: &Value) -> Option<usize> {
    match v {
        Value::Tuple(t) => Some(Rc::as_ptr(t) as *const () as usize),
        Value::List(l) => Some(Rc::as_ptr(l) as *const () as usize),
        Value::Dict(d) => Some(Rc::as_ptr(d) as *const () as usize),
        Value::Object(o) => Some(Rc::as_ptr(o) as *const () as usize),
        _ => None,
    }
}

/// Runs a pickle program and returns the object it builds.
pub fn unpickle(data: &[u8]) -> Result<Value> {
    unpickle_prefix(data).map(|u| u.value)
}

/// A pickle read from the start of a longer byte stream.
#[derive(Debug)]
pub struct Unpickled {
    pub value: Value,
    /// Bytes consumed (the position after STOP).
    pub end: usize,
    /// Every storage the pickle referred to, in order of first reference.
    pub storages: Vec<StorageRef>,
}

/// Runs the pickle at the start of `data`, which may go on with other content (torch's legacy
/// format is several pickles followed by raw storages).
pub fn unpickle_prefix(data: &[u8]) -> Result<Unpickled> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: Default::default(),
        storages: Vec::new(),
        containers: Default::default(),
        alive: Vec::new(),
    };
    let value = m.run()?;
    Ok(Unpickled {
        value,
        end: m.pos,
        storages: m.storages,
    })
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| PickleError(format!("pickle truncated at byte {}", self.pos)))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PickleError("pickle truncated inside a text argument".into()))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| PickleError("invalid UTF-8 in a string".into()))
    }

    fn len(&mut self, n: u64) -> Result<usize> {
        usize::try_from(n).map_err(|_| PickleError(format!("length {n} too large")))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Slot::Val(v));
    }

    /// Places `children` inside a container: marks them nested and returns the depth the
    /// container needs, refusing past [`MAX_DEPTH`].
    fn adopt<'v>(&mut self, children: impl IntoIterator<Item = &'v Value>) -> Result<u32> {
        let mut depth = 1;
        for child in children {
            if let Some(id) = container_id(child) {
                let entry = self.containers.entry(id).or_insert((1, false));
                entry.1 = true;
                depth = depth.max(entry.0 + 1);
            }
        }
        if depth > MAX_DEPTH {
            return err(format!(
                "containers nested more than {MAX_DEPTH} deep at byte {} (torch.save writes a \
                 few levels)",
                self.pos
            ));
        }
        Ok(depth)
    }

    /// Pushes a container of `depth` (a new one, or one REDUCE handed back).
    fn push_new(&mut self, v: Value, depth: u32) {
        if let Some(id) = container_id(&v) {
            match self.containers.get_mut(&id) {
                Some(entry) => entry.0 = entry.0.max(depth),
                None => {
                    self.containers.insert(id, (depth, false));
                    self.alive.push(v.clone());
                }
            }
        }
        self.push(v);
    }

    /// Builds a container from `items` and pushes it.
    fn push_built(&mut self, items: &[Value], make: impl FnOnce() -> Value) -> Result<()> {
        let depth = self.adopt(items)?;
        self.push_new(make(), depth);
        Ok(())
    }

    /// Before adding `children` to the container on top of the stack: it must not be nested
    /// in another one yet (that would change its parents' depth unseen; `torch.save` fills a
    /// container before placing it).
    fn grow_top<'v>(&mut self, children: impl IntoIterator<Item = &'v Value>) -> Result<()> {
        let Some(id) = container_id(self.top()?) else {
            return Ok(());
        };
        let children: Vec<&Value> = children.into_iter().collect();
        let (depth, nested) = self.containers.get(&id).copied().unwrap_or((1, false));
        // Only a container nested in nothing grows, and never into itself: so no cycle can
        // form (a cycle would make every walk of the result recurse without end).
        if nested || children.iter().any(|c| container_id(c) == Some(id)) {
            return err(format!(
                "a container changed after it was placed in another, or placed in itself, at \
                 byte {} (recursive structures are not supported)",
                self.pos
            ));
        }
        let grown = self.adopt(children)?.max(depth);
        self.containers.insert(id, (grown, false));
        Ok(())
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Slot::Val(v)) => Ok(v),
            Some(Slot::Mark) => err("unexpected MARK on the pickle stack"),
            None => err("pickle stack underflow"),
        }
    }

    fn top(&mut self) -> Result<&mut Value> {
        match self.stack.last_mut() {
            Some(Slot::Val(v)) => Ok(v),
            _ => err("pickle stack underflow"),
        }
    }

    /// Pops everything down to the last MARK.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| PickleError("MARK not found".into()))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .filter_map(|s| match s {
                Slot::Val(v) => Some(v),
                Slot::Mark => None,
            })
            .collect())
    }

    fn memo_get(&self, idx: u32) -> Result<Value> {
        self.memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| PickleError(format!("memo key {idx} not found")))
    }

    fn memo_put(&mut self, idx: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> Result<()> {
        self.grow_top(pairs.iter().flat_map(|(k, v)| [k, v]))?;
        match self.top()? {
            Value::Dict(d) => d.borrow_mut().extend(pairs),
            Value::Object(o) => o.borrow_mut().items.extend(pairs),
            other => return err(format!("SETITEMS on a {}", other.type_name())),
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        self.grow_top(&items)?;
        match self.top()? {
            Value::List(l) => l.borrow_mut().extend(items),
            Value::Object(o) => o
                .borrow_mut()
                .items
                .extend(items.into_iter().map(|v| (Value::None, v))),
            other => return err(format!("APPEND on a {}", other.type_name())),
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return err(format!("unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    // FRAME: the length is informational.
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let v = long_from_le(self.take(n)?)?;
                    self.push(v);
                }
                0x8b => {
                    let n = self.u32()? as usize;
                    let v = long_from_le(self.take(n)?)?;
                    self.push(v);
                }
                b'I' => {
                    let s = self.line()?;
                    let v = match s.trim() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        t => Value::Int(
                            t.parse()
                                .map_err(|_| PickleError(format!("bad INT `{t}`")))?,
                        ),
                    };
                    self.push(v);
                }
                b'L' => {
                    let s = self.line()?;
                    let t = s.trim().trim_end_matches('L');
                    let v = t
                        .parse()
                        .map_err(|_| PickleError(format!("bad LONG `{t}`")))?;
                    self.push(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'F' => {
                    let s = self.line()?;
                    let v = s
                        .trim()
                        .parse()
                        .map_err(|_| PickleError(format!("bad FLOAT `{s}`")))?;
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.string(n)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.string(n)?;
                    self.push(Value::Str(s));
                }
                0x8d => {
                    let n = self.u64()?;
                    let n = self.len(n)?;
                    let s = self.string(n)?;
                    self.push(Value::Str(s));
                }
                b'V' => {
                    let s = self.line()?;
                    self.push(Value::Str(s));
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                0x8e => {
                    let n = self.u64()?;
                    let n = self.len(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'S' => {
                    let s = self.line()?;
                    self.push(Value::Str(s.trim_matches(['\'', '"']).to_string()));
                }
                b'}' => self.push_new(Value::dict(Vec::new()), 1),
                b']' => self.push_new(Value::List(Rc::new(RefCell::new(Vec::new()))), 1),
                b')' => self.push_new(Value::Tuple(Rc::new(Vec::new())), 1),
                0x8f => self.push_new(Value::List(Rc::new(RefCell::new(Vec::new()))), 1), // EMPTY_SET
                b'd' => {
                    let items = self.pop_mark()?;
                    let depth = self.adopt(&items)?;
                    let pairs = pairs(items)?;
                    self.push_new(Value::dict(pairs), depth);
                }
                // LIST, and FROZENSET (sets are kept as lists)
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    let depth = self.adopt(&items)?;
                    self.push_new(Value::List(Rc::new(RefCell::new(items))), depth);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let depth = self.adopt(&items)?;
                    self.push_new(Value::Tuple(Rc::new(items)), depth);
                }
                0x85 => {
                    let a = self.pop()?;
                    let items = vec![a];
                    self.push_built(&items, || Value::Tuple(Rc::new(items.clone())))?;
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    let items = vec![a, b];
                    self.push_built(&items, || Value::Tuple(Rc::new(items.clone())))?;
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    let items = vec![a, b, c];
                    self.push_built(&items, || Value::Tuple(Rc::new(items.clone())))?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.set_items(pairs)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                0x90 => {
                    // ADDITEMS (sets are kept as lists)
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                b'p' => {
                    let s = self.line()?;
                    let i = s
                        .trim()
                        .parse()
                        .map_err(|_| PickleError(format!("bad PUT `{s}`")))?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.push(v);
                }
                b'g' => {
                    let s = self.line()?;
                    let i = s
                        .trim()
                        .parse()
                        .map_err(|_| PickleError(format!("bad GET `{s}`")))?;
                    let v = self.memo_get(i)?;
                    self.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            self.push(Value::Global(format!("{m}.{n}")))
                        }
                        _ => return err("STACK_GLOBAL expects two strings"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent_load(&pid)?;
                    if let Value::Storage(st) = &v {
                        if !self.storages.iter().any(|s| s.key == st.key) {
                            self.storages.push(st.clone());
                        }
                    }
                    self.push(v);
                }
                b'P' => return err("text PERSID is not used by torch.save"),
                // REDUCE, NEWOBJ
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let depth = self.adopt([&args])?;
                    let v = reduce(callable, args)?;
                    self.push_new(v, depth);
                }
                0x92 => {
                    // NEWOBJ_EX
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let depth = self.adopt([&args])?;
                    let v = reduce(class, args)?;
                    self.push_new(v, depth);
                }
                b'b' => {
                    let state = self.pop()?;
                    self.grow_top([&state])?;
                    match self.top()? {
                        Value::Object(o) => o.borrow_mut().state = Some(state),
                        // An OrderedDict's `_metadata` and the like: nothing we need.
                        Value::Dict(_) | Value::Tensor(_) | Value::List(_) => {}
                        other => return err(format!("BUILD on a {}", other.type_name())),
                    }
                }
                other => {
                    return err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    ))
                }
            }
        }
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return err("odd number of items for a dict");
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn long_from_le(bytes: &[u8]) -> Result<Value> {
    if bytes.len() > 8 {
        return Ok(Value::BigInt(bytes.to_vec()));
    }
    if bytes.is_empty() {
        return Ok(Value::Int(0));
    }
    let neg = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut a = [if neg { 0xff } else { 0 }; 8];
    a[..bytes.len()].copy_from_slice(bytes);
    Ok(Value::Int(i64::from_le_bytes(a)))
}

/// torch.save's persistent id: `('storage', storage_class, key, location, numel)`.
fn persistent_load(pid: &Value) -> Result<Value> {
    let items = pid
        .as_seq()
        .ok_or_else(|| PickleError("persistent id is not a tuple".into()))?;
    if items.first().and_then(Value::as_str) != Some("storage") || items.len() < 5 {
        return err("unsupported persistent id (expected a torch storage)");
    }
    // The legacy format's sixth field describes storage views, which torch stopped writing.
    if !matches!(items.get(5), None | Some(Value::None)) {
        return err("storage views (torch < 1.0 files) are not supported");
    }
    let kind = match &items[1] {
        Value::Global(class) => storage_kind(class)
            .ok_or_else(|| PickleError(format!("unsupported storage class {class}")))?,
        // Some writers put the dtype here directly.
        Value::Object(o) => {
            let class = o.borrow().class.clone();
            dtype_kind(&class).ok_or_else(|| PickleError(format!("unsupported dtype {class}")))?
        }
        other => return err(format!("storage class is a {}", other.type_name())),
    };
    let key = match &items[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return err("storage key is not a string"),
    };
    let numel = items[4]
        .as_int()
        .ok_or_else(|| PickleError("storage size is not an integer".into()))?;
    Ok(Value::Storage(StorageRef { key, kind, numel }))
}

fn arg(args: &[Value], i: usize, what: &str) -> Result<Value> {
    args.get(i)
        .cloned()
        .ok_or_else(|| PickleError(format!("{what}: missing argument {i}")))
}

/// Applies a callable: the torch rebuild functions and `OrderedDict` are understood, anything
/// else becomes an opaque object.
fn reduce(callable: Value, args: Value) -> Result<Value> {
    let name = match &callable {
        Value::Global(g) => g.clone(),
        Value::Object(o) => o.borrow().class.clone(),
        other => return err(format!("REDUCE on a {}", other.type_name())),
    };
    let list = args.as_seq().unwrap_or_default();
    match name.as_str() {
        "torch._utils._rebuild_tensor_v2"
        | "torch._utils._rebuild_tensor"
        | "torch._utils._rebuild_tensor_v3" => {
            let storage = match arg(&list, 0, &name)? {
                Value::Storage(s) => s,
                other => return err(format!("{name}: storage is a {}", other.type_name())),
            };
            let offset = arg(&list, 1, &name)?
                .as_int()
                .ok_or_else(|| PickleError(format!("{name}: bad storage offset")))?;
            let size = arg(&list, 2, &name)?
                .int_seq()
                .ok_or_else(|| PickleError(format!("{name}: bad size")))?;
            let stride = arg(&list, 3, &name)?
                .int_seq()
                .ok_or_else(|| PickleError(format!("{name}: bad stride")))?;
            let mut storage = storage;
            // v3 carries the dtype explicitly (untyped storage).
            if name.ends_with("_v3") {
                if let Some(Value::Global(dt)) = list.get(6) {
                    if let Some(kind) = dtype_kind(dt) {
                        storage.kind = kind;
                    }
                }
            }
            Ok(Value::Tensor(TensorRef {
                storage,
                offset,
                size,
                stride,
            }))
        }
        "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
            arg(&list, 0, &name)
        }
        "torch._tensor._rebuild_from_type_v2" => {
            let func = arg(&list, 0, &name)?;
            let inner = arg(&list, 2, &name)?;
            reduce(func, inner)
        }
        "collections.OrderedDict" | "builtins.dict" | "__builtin__.dict" => {
            let mut pairs_out = Vec::new();
            if let Some(Value::List(l)) = list.first() {
                for item in l.borrow().iter() {
                    if let Some(kv) = item.as_seq() {
                        if kv.len() == 2 {
                            pairs_out.push((kv[0].clone(), kv[1].clone()));
                        }
                    }
                }
            }
            Ok(Value::dict(pairs_out))
        }
        _ => Ok(Value::Object(Rc::new(RefCell::new(Object {
            class: name,
            args,
            state: None,
            items: Vec::new(),
        })))),
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_and_cycles_are_refused() {
        let mut deep = vec![0x80, 0x02];
        deep.extend(std::iter::repeat_n(b']', 10_000));
        deep.extend(std::iter::repeat_n(b'a', 9_999));
        deep.push(b'.');
        let e = unpickle(&deep).unwrap_err().to_string();
        assert!(e.contains("nested more than 200 deep"), "{e}");

        let mut ok = vec![0x80, 0x02];
        ok.extend(std::iter::repeat_n(b']', 150));
        ok.extend(std::iter::repeat_n(b'a', 149));
        ok.push(b'.');
        assert!(unpickle(&ok).is_ok());

        for cyclic in [
            &b"\x80\x02]q\x00h\x00a."[..],
            b"\x80\x02]q\x00]q\x01ah\x01]a.",
        ] {
            let e = unpickle(cyclic).unwrap_err().to_string();
            assert!(e.contains("recursive structures"), "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_dict_of_python_scalars() {
        // pickle.dumps({'a': 1, 'b': [2.5, 'x'], 'c': (None, True)}, protocol=2)
        let bytes: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x04eX\x01\x00\x00\x00cq\x05N\x88\x86q\x06u.";
        let v = unpickle(bytes).unwrap();
        assert!(matches!(v.get("a"), Some(Value::Int(1))));
        let b = v.get("b").unwrap().as_seq().unwrap();
        assert!(matches!(b[0], Value::Float(f) if f == 2.5));
        assert_eq!(b[1].as_str(), Some("x"));
        let c = v.get("c").unwrap().as_seq().unwrap();
        assert!(matches!(c[0], Value::None) && matches!(c[1], Value::Bool(true)));
    }

    #[test]
    fn memoised_containers_share_later_updates() {
        // A list memoised while empty, then filled, then fetched again from the memo.
        let bytes: &[u8] = b"\x80\x02]q\x00K\x07ah\x00\x86.";
        let v = unpickle(bytes).unwrap();
        let t = v.as_seq().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].as_seq().unwrap().len(), 1);
    }

    #[test]
    fn negative_and_long_integers() {
        assert!(matches!(long_from_le(&[0xff]).unwrap(), Value::Int(-1)));
        assert!(matches!(
            long_from_le(&[0x00, 0x01]).unwrap(),
            Value::Int(256)
        ));
        assert!(matches!(long_from_le(&[1; 9]).unwrap(), Value::BigInt(b) if b.len() == 9));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes: &[u8] = b"\x80\x02}q\x00(X\x05\x00\x00\x00ab";
        let e = unpickle(bytes).unwrap_err();
        assert!(e.0.contains("truncated"), "{e}");
        assert!(unpickle(b"").is_err());
        assert!(unpickle(b"\x80\x02\xff").is_err());
    }

    #[test]
    fn unknown_classes_become_objects() {
        // GLOBAL 'foo Bar', EMPTY_TUPLE, REDUCE, EMPTY_DICT, BUILD, STOP
        let bytes: &[u8] = b"\x80\x02cfoo\nBar\n)R}b.";
        match unpickle(bytes).unwrap() {
            Value::Object(o) => {
                let o = o.borrow();
                assert_eq!(o.class, "foo.Bar");
                assert!(o.state.is_some());
            }
            other => panic!("{other:?}"),
        }
    }
}
