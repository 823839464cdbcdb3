//! A failure after a signal arrived exits 128+N (its own process: the signal flag is
//! process-wide).

#[test]
fn an_interrupted_failure_exits_128_plus_the_signal() {
    assert_eq!(cli_policy::exit::for_error(), cli_policy::exit::ERROR);
    spfs::signals::install();
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(cli_policy::exit::for_error(), 143);
    let code = cli_policy::finish(Err(cli_policy::Report::new("the solve was interrupted")));
    assert_eq!(code, 143);
}
