//! The architecture a checkpoint declares (ultralytics' model YAML), checked
//! against what the engine supports: the seed's layer list (SPEC.md §1.2) with
//! any class count, hidden width, query count, decoder depth, heads and
//! sampling points.
//!
//! The YAML comes from the checkpoint itself (`model.yaml` of a `.pt`), from a
//! file (`--cfg`), or defaults to the seed's `rtdetr-mnv4-bifpn.yaml`.

use crate::decoder::DecoderConfig;
use crate::error::QuantizeError;

/// The seed architecture, the default for checkpoints that carry none.
pub const SEED_YAML: &str = include_str!("arch/rtdetr-mnv4-bifpn.yaml");

/// A YAML / pickled-dict value, reduced to what model definitions use.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `null`, `~`, or the string `None` (as ultralytics YAML writes it).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value of `key` in a mapping with string keys.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Node::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Node::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Node]> {
        match self {
            Node::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Converts a pickled value (a checkpoint's `model.yaml` dict) into a [`Node`]
/// tree; values a model definition never holds become [`Node::Null`].
pub fn node_from_pickle(v: &crate::pt::Value) -> Node {
    use crate::pt::Value;
    match v {
        Value::None => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Int(i) => Node::Int(*i),
        Value::Float(f) => Node::Float(*f),
        Value::Str(s) if &**s == "None" => Node::Null,
        Value::Str(s) => Node::Str(s.to_string()),
        Value::List(l) | Value::Tuple(l) => Node::List(l.iter().map(node_from_pickle).collect()),
        Value::Dict(d) => Node::Map(
            d.iter()
                .map(|(k, v)| (node_from_pickle(k), node_from_pickle(v)))
                .collect(),
        ),
        _ => Node::Null,
    }
}

/// Parses YAML text into a [`Node`] tree.
pub fn parse_yaml(text: &str) -> Result<Node, QuantizeError> {
    use yaml_rust2::{Yaml, YamlLoader};
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| QuantizeError::Unsupported(format!("model YAML: {e}")))?;
    fn conv(y: &Yaml) -> Node {
        match y {
            Yaml::Null | Yaml::BadValue => Node::Null,
            Yaml::Boolean(b) => Node::Bool(*b),
            Yaml::Integer(i) => Node::Int(*i),
            Yaml::Real(r) => r
                .parse()
                .map(Node::Float)
                .unwrap_or_else(|_| Node::Str(r.clone())),
            Yaml::String(s) if s == "None" => Node::Null,
            Yaml::String(s) if s == "False" => Node::Bool(false),
            Yaml::String(s) if s == "True" => Node::Bool(true),
            Yaml::String(s) => Node::Str(s.clone()),
            Yaml::Array(a) => Node::List(a.iter().map(conv).collect()),
            Yaml::Hash(h) => Node::Map(h.iter().map(|(k, v)| (conv(k), conv(v))).collect()),
            Yaml::Alias(_) => Node::Null,
        }
    }
    docs.first()
        .map(conv)
        .ok_or_else(|| QuantizeError::Unsupported("model YAML is empty".into()))
}

/// What the engine takes from a supported architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arch {
    /// `nc` of the YAML, if it is a number.
    pub nc: Option<usize>,
    /// AIFI heads.
    pub aifi_heads: usize,
    /// Decoder hidden width.
    pub hidden: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
    /// Decoder queries, heads and points.
    pub decoder: DecoderConfig,
}

/// One expected row: `from`, module, and a check of its arguments.
struct Row {
    from: &'static [i64],
    module: &'static str,
    args: fn(&[Node]) -> bool,
}

fn any(_: &[Node]) -> bool {
    true
}
fn conv_k1(a: &[Node]) -> bool {
    conv_ks(a, 1, 1)
}
fn conv_k3s2(a: &[Node]) -> bool {
    conv_ks(a, 3, 2)
}
/// `Conv` with kernel k and stride s (defaults 1, 1).
fn conv_ks(a: &[Node], k: i64, s: i64) -> bool {
    let k_ = a.get(1).and_then(Node::as_int).unwrap_or(1);
    let s_ = a.get(2).and_then(Node::as_int).unwrap_or(1);
    (k_, s_) == (k, s)
}
fn upsample(a: &[Node]) -> bool {
    a.get(1).and_then(Node::as_int) == Some(2)
        && a.get(2)
            .and_then(Node::as_str)
            .is_none_or(|m| m == "nearest")
}

/// The seed's head, logical layers 5..=26 (SPEC.md §1.2).
const HEAD: [Row; 22] = [
    Row {
        from: &[-1],
        module: "Conv",
        args: conv_k1,
    },
    Row {
        from: &[-1],
        module: "AIFI",
        args: any,
    },
    Row {
        from: &[-1],
        module: "Conv",
        args: conv_k1,
    },
    Row {
        from: &[2],
        module: "Conv",
        args: conv_k1,
    },
    Row {
        from: &[3],
        module: "Conv",
        args: conv_k1,
    },
    Row {
        from: &[7],
        module: "Conv",
        args: conv_k1,
    },
    Row {
        from: &[-1],
        module: "nn.Upsample",
        args: upsample,
    },
    Row {
        from: &[-1, 9],
        module: "BiFPN",
        args: any,
    },
    Row {
        from: &[-1],
        module: "RepC3",
        args: any,
    },
    Row {
        from: &[-1],
        module: "nn.Upsample",
        args: upsample,
    },
    Row {
        from: &[-1, 8],
        module: "BiFPN",
        args: any,
    },
    Row {
        from: &[-1],
        module: "RepC3",
        args: any,
    },
    Row {
        from: &[1],
        module: "Conv",
        args: conv_k3s2,
    },
    Row {
        from: &[-1, 8, 16],
        module: "BiFPN",
        args: any,
    },
    Row {
        from: &[-1],
        module: "RepC3",
        args: any,
    },
    Row {
        from: &[-1],
        module: "Conv",
        args: conv_k3s2,
    },
    Row {
        from: &[-1, 9, 13],
        module: "BiFPN",
        args: any,
    },
    Row {
        from: &[-1],
        module: "RepC3",
        args: any,
    },
    Row {
        from: &[-1],
        module: "Conv",
        args: conv_k3s2,
    },
    Row {
        from: &[-1, 10],
        module: "BiFPN",
        args: any,
    },
    Row {
        from: &[-1],
        module: "RepC3",
        args: any,
    },
    Row {
        from: &[19, 22, 25],
        module: "RTDETRDecoder",
        args: any,
    },
];

fn unsupported(row: usize, what: impl std::fmt::Display) -> QuantizeError {
    QuantizeError::Unsupported(format!("model layer {row}: {what}"))
}

fn from_list(n: &Node) -> Option<Vec<i64>> {
    match n {
        Node::Int(i) => Some(vec![*i]),
        Node::List(l) => l.iter().map(Node::as_int).collect(),
        _ => None,
    }
}

/// Checks a model definition against the supported layer list and extracts
/// its hyper-parameters. Errors name the first unsupported layer.
pub fn check_arch(yaml: &Node) -> Result<Arch, QuantizeError> {
    let nc = yaml.get("nc").and_then(Node::as_int).map(|v| v as usize);
    let backbone = yaml
        .get("backbone")
        .and_then(Node::as_list)
        .ok_or_else(|| QuantizeError::Unsupported("model YAML has no `backbone` list".into()))?;
    let head = yaml
        .get("head")
        .and_then(Node::as_list)
        .ok_or_else(|| QuantizeError::Unsupported("model YAML has no `head` list".into()))?;
    let row = |r: &Node| -> Option<(Vec<i64>, String, Vec<Node>)> {
        let l = r.as_list()?;
        let module = l.get(2)?.as_str()?.to_string();
        let args = l
            .get(3)
            .and_then(Node::as_list)
            .map(<[Node]>::to_vec)
            .unwrap_or_default();
        Some((from_list(l.first()?)?, module, args))
    };
    match backbone {
        [b] => match row(b) {
            Some((f, m, _)) if f == [-1] && m == "MobileNetV4ConvSmall" => {}
            Some((_, m, _)) => {
                return Err(unsupported(
                    0,
                    format_args!("backbone `{m}` (only MobileNetV4ConvSmall is supported)"),
                ));
            }
            None => return Err(unsupported(0, "malformed backbone row")),
        },
        _ => {
            return Err(QuantizeError::Unsupported(
                "the backbone must be one MobileNetV4ConvSmall row".into(),
            ));
        }
    }
    if head.len() != HEAD.len() {
        return Err(QuantizeError::Unsupported(format!(
            "the head has {} rows; the supported RT-DETR/BiFPN head has {}",
            head.len(),
            HEAD.len()
        )));
    }
    let mut aifi_heads = 8;
    let mut dec = None;
    for (i, (r, want)) in head.iter().zip(HEAD.iter()).enumerate() {
        let logical = i + 5;
        let (from, module, args) = row(r).ok_or_else(|| unsupported(logical, "malformed row"))?;
        if module != want.module {
            return Err(unsupported(
                logical,
                format_args!("`{module}` where the supported graph has `{}`", want.module),
            ));
        }
        if from != want.from {
            return Err(unsupported(
                logical,
                format_args!(
                    "`{module}` takes {from:?}; the supported graph has {:?}",
                    want.from
                ),
            ));
        }
        if !(want.args)(&args) {
            return Err(unsupported(
                logical,
                format_args!("`{module}` with arguments {args:?}"),
            ));
        }
        if module == "AIFI" {
            aifi_heads = args.get(1).and_then(Node::as_int).unwrap_or(8) as usize;
        }
        if module == "RTDETRDecoder" {
            dec = Some(args);
        }
    }
    // RTDETRDecoder(nc, [ch], hd=256, nq=300, ndp=4, nh=8, ndl=6): parse_model
    // inserts the channel list at position 1 in the live dict.
    let args = dec.unwrap_or_default();
    let mut rest: Vec<&Node> = args.iter().skip(1).collect();
    if rest.first().is_some_and(|n| matches!(n, Node::List(_))) {
        rest.remove(0);
    }
    let int_at = |i: usize, default: i64| -> Result<usize, QuantizeError> {
        match rest.get(i) {
            None => Ok(default as usize),
            Some(Node::Int(v)) if *v > 0 => Ok(*v as usize),
            Some(other) => Err(unsupported(
                26,
                format_args!("RTDETRDecoder argument {other:?}"),
            )),
        }
    };
    let hidden = int_at(0, 256)?;
    let queries = int_at(1, 300)?;
    let points = int_at(2, 4)?;
    let heads = int_at(3, 8)?;
    let decoder_layers = int_at(4, 6)?;
    if hidden % heads != 0 || aifi_heads == 0 {
        return Err(unsupported(
            26,
            format_args!("{heads} heads do not divide the width {hidden}"),
        ));
    }
    Ok(Arch {
        nc,
        aifi_heads,
        hidden,
        decoder_layers,
        decoder: DecoderConfig {
            queries,
            heads,
            points,
            max_det: 300,
        },
    })
}

/// The seed architecture.
pub fn seed_arch() -> Arch {
    parse_yaml(SEED_YAML)
        .and_then(|y| check_arch(&y))
        .unwrap_or_else(|e| panic!("the built-in seed YAML is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_yaml_is_supported() {
        let a = seed_arch();
        assert_eq!(a.nc, Some(1));
        assert_eq!(
            (
                a.hidden,
                a.decoder.queries,
                a.decoder.points,
                a.decoder.heads,
                a.decoder_layers
            ),
            (256, 300, 4, 8, 3)
        );
        assert_eq!(a.aifi_heads, 8);
    }

    #[test]
    fn other_hyper_parameters_are_read() {
        let y = SEED_YAML
            .replace("[nc, 256, 300, 4, 8, 3]", "[nc, 128, 100, 2, 4, 2]")
            .replace("nc: 1", "nc: 5");
        let a = check_arch(&parse_yaml(&y).unwrap()).unwrap();
        assert_eq!(
            (
                a.nc,
                a.hidden,
                a.decoder.queries,
                a.decoder.points,
                a.decoder.heads,
                a.decoder_layers
            ),
            (Some(5), 128, 100, 2, 4, 2)
        );
    }

    #[test]
    fn unsupported_layers_are_named() {
        let y = SEED_YAML.replace("MobileNetV4ConvSmall", "ResNet50");
        let e = check_arch(&parse_yaml(&y).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ResNet50"), "{e}");
        let y = SEED_YAML.replace("[[-1, 9], 1, BiFPN, []]", "[[-1, 9], 1, Concat, [1]]");
        let e = check_arch(&parse_yaml(&y).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 12") && e.contains("Concat"), "{e}");
        let y = SEED_YAML.replace("[1, 1, Conv, [256, 3, 2]]", "[1, 1, Conv, [256, 5, 2]]");
        let e = check_arch(&parse_yaml(&y).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 17"), "{e}");
        assert!(parse_yaml("a: [1, 2").is_err());
        assert!(check_arch(&parse_yaml("nc: 3").unwrap()).is_err());
    }

    #[test]
    fn the_live_decoder_row_with_channels_is_read() {
        // parse_model inserts the input channels into the live dict's row.
        let y = SEED_YAML.replace(
            "[nc, 256, 300, 4, 8, 3]",
            "[80, [256, 256, 256], 256, 300, 4, 8, 3]",
        );
        let a = check_arch(&parse_yaml(&y).unwrap()).unwrap();
        assert_eq!(a.decoder_layers, 3);
    }
}
