//! Placeholder: the fake IBKR gateway is being written (issue 3).

fn main() {
    eprintln!("fake-ibkr: not built yet");
    std::process::exit(2);
}
