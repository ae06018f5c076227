use homeostat_sdk::{CheckApply, Info, Outcome, Resource, ResourceId, Result, fs};

#[derive(serde::Deserialize)]
struct Params {
    path: String,
}

struct File;
impl Resource for File {
    const KIND: &'static str = "file";
    const SCHEMA: &'static str = include_str!("../schema/file.json");
    type Params = Params;
    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        Ok(Info::new().write_path(&p.path).watch_path(&p.path))
    }
    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let mut out = Outcome::new();
        if fs::stat(&p.path)?.is_none() {
            out.change("create");
            if ctx.apply {
                fs::write(&p.path, b"", fs::Attrs::default())?;
            }
        }
        Ok(out)
    }
}
homeostat_sdk::export_resource!(File; capabilities = ["fs"]);
