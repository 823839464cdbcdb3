use super::*;

#[test]
fn placeholder_roundtrip() {
    let m = Manifest::default();
    let o = Object::Manifest(m);
    assert_eq!(Object::decode(&o.encode()).unwrap(), o);
}
