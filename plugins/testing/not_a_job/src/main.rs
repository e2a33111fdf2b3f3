//! A valid WASI command component that does not implement the job world:
//! uploading it must be refused with a message naming the missing export.

fn main() {
    println!("I am a command, not a job");
}
