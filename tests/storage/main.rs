//! Object storage: the same cases on local files and on a real S3-compatible server (moto,
//! started per test on a free loopback port), the app on S3 (readiness, download redirects
//! to presigned URLs, a whole task), GCS configuration and signing without any network, the
//! storage settings, resumable uploads on S3, and the single rustls crypto provider.

mod app;
mod backends;
mod gcs;
mod moto;
mod settings;
mod sign;
mod tus;
