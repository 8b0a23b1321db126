//! `thinsvr service` under the Windows service control manager: the
//! dispatcher, the control handler (Stop and Shutdown cancel the service), and
//! the status reports (Running, then Stopped with an exit code).
//!
//! The service body is the same as on Linux ([`crate::service::run`]); this
//! module only connects it to the SCM. Started from a console instead, the
//! dispatcher refuses and the caller runs the body in the foreground.

use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's body: runs until the token is cancelled; an error is logged
/// and reported to the SCM as a service-specific exit code 1.
pub type Body = Box<dyn Fn(CancellationToken) -> Result<(), String> + Send + Sync>;

struct Registered {
    name: String,
    body: Body,
}

static SERVICE: OnceLock<Registered> = OnceLock::new();

/// Windows error: "The service process could not connect to the service controller".
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;

/// Hands this process to the SCM as service `name` running `body`. Returns
/// `Ok(true)` once the service stopped, `Ok(false)` when the process was not
/// started by the SCM (run `body` in the foreground then).
pub fn run_as_service(name: &str, body: Body) -> Result<bool, String> {
    if SERVICE.set(Registered { name: name.to_string(), body }).is_err() {
        return Err("the service is already registered in this process".into());
    }
    match service_dispatcher::start(name, ffi_service_main) {
        Ok(()) => Ok(true),
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => {
            Ok(false)
        }
        Err(e) => Err(format!("cannot start the service dispatcher: {e}")),
    }
}

define_windows_service!(ffi_service_main, service_main);

fn status(state: ServiceState, exit: ServiceExitCode) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: exit,
        checkpoint: 0,
        wait_hint: Duration::from_secs(if state == ServiceState::StopPending { 10 } else { 0 }),
        process_id: None,
    }
}

fn service_main(_args: Vec<OsString>) {
    let Some(reg) = SERVICE.get() else { return };
    let token = CancellationToken::new();
    let stop = token.clone();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(&reg.name, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("cannot register the service control handler: {e}");
            return;
        }
    };
    let _ = handle.set_service_status(status(ServiceState::Running, ServiceExitCode::Win32(0)));
    let exit = match (reg.body)(token) {
        Ok(()) => ServiceExitCode::Win32(0),
        Err(e) => {
            tracing::error!("ThinServer service failed: {e}");
            ServiceExitCode::ServiceSpecific(1)
        }
    };
    let _ = handle.set_service_status(status(ServiceState::Stopped, exit));
}
