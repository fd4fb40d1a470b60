// `sqlx::migrate!` embeds the migration folders; rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
