//! A `best.pt` and the `.safetensors` of the same weights give the same model
//! file, with the class names and architecture taken from the checkpoint.

use edgedetr_quantizer::arch::{check_arch, node_from_pickle};
use edgedetr_quantizer::{Options, pt};
use edgedetr_tests::*;

#[test]
fn pt_and_safetensors_build_identical_models() {
    if skip_requested("pt_and_safetensors_build_identical_models") {
        return;
    }
    let ck = pt::read_pt_file(fixture_dir().join("model.pt")).expect("model.pt reads");
    assert_eq!(ck.names.len(), 80);
    assert_eq!(ck.names[0], "person");
    let arch = check_arch(&node_from_pickle(
        ck.yaml.as_ref().expect("the checkpoint carries its YAML"),
    ))
    .expect("the checkpoint's architecture is supported");
    assert_eq!(arch.nc, Some(80));
    let from_pt = edgedetr_quantizer::build(
        &ck.state_dict,
        &Options {
            imgsz: 320,
            names: Some(ck.names.clone()),
            arch: Some(arch),
            source: "same".into(),
            ..Options::default()
        },
    )
    .expect("builds from .pt");
    let from_st = edgedetr_quantizer::build(
        state_dict(),
        &Options {
            imgsz: 320,
            source: "same".into(),
            ..Options::default()
        },
    )
    .expect("builds from .safetensors");
    assert!(from_pt.bytes == from_st.bytes, "the two model files differ");
}
