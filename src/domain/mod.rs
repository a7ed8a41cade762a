//! Domain types and pure rules. Nothing here does I/O.

pub mod error_code;
pub mod field_error;
pub mod filename;
pub mod notification;
pub mod task;
pub mod user;

pub use error_code::ErrorCode;
pub use filename::safe_filename;
pub use notification::{Channel, DeliveryState, EmailPreferences, Event, NotificationView};
pub use task::{OutputFile, Profile, Source, Stage, TaskError, TaskRecord, TaskStatus, TaskView};
pub use user::{EmailAddress, KeyScope, PASSWORD_PATTERN, Password, Username};
