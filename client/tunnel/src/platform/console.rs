//! The apps are Windows GUI programs (no console window opens when a user
//! double-clicks them). Run from a command prompt with a subcommand, they
//! attach to that prompt's console so that their output and errors appear
//! there. Elsewhere this does nothing.

/// Attaches to the parent's console when standard output goes nowhere (a GUI
/// program started from a command prompt). Output redirected to a file or a
/// pipe is left as it is.
pub fn attach_parent_console() {
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::Console::{
            AttachConsole, GetStdHandle, ATTACH_PARENT_PROCESS, STD_OUTPUT_HANDLE,
        };
        // SAFETY: plain calls without pointers; a failure leaves the process as it was.
        unsafe {
            let out = GetStdHandle(STD_OUTPUT_HANDLE);
            if out.is_null() || out as isize == -1 {
                AttachConsole(ATTACH_PARENT_PROCESS);
            }
        }
    }
}
