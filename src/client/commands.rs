//! What each client command does (`login`, `logout`, `whoami` are in [`super::account`]).

use std::io::IsTerminal;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use super::api::Api;
use super::args::{ClientCommand, SubmitArgs, TaskArg, TasksArgs};
use super::render::{self, Task};
use super::report::{Reporter, colour_wanted};
use super::upload::LocalFile;
use super::{ClientError, ClientResult, account, download, options, upload, watch};
use crate::domain::TaskStatus;

pub async fn run(command: ClientCommand) -> ClientResult<()> {
    match command {
        ClientCommand::Login(a) => account::login(a).await,
        ClientCommand::Logout(s) => account::logout(s).await,
        ClientCommand::Whoami { server, json } => account::whoami(server, json.json).await,
        ClientCommand::Submit(a) => submit(a).await,
        ClientCommand::Tasks(a) => tasks(a).await,
        ClientCommand::Task { task, json } => show(task, json.json).await,
        ClientCommand::Watch { task, json } => {
            let api = Api::resolve(task.server.server.as_deref())?;
            let reporter = Reporter::new(json.json);
            let done = watch::follow(&api, task.id, &task.id.to_string(), &reporter).await?;
            outcome(&reporter, &task.id.to_string(), &done).map_err(ClientError::failed)
        }
        ClientCommand::Download { task, output, json } => {
            let api = Api::resolve(task.server.server.as_deref())?;
            let reporter = Reporter::new(json.json);
            let t = watch::get(&api, task.id).await?;
            if t.status != TaskStatus::Succeeded {
                return Err(ClientError::failed(format!(
                    "task {} is {}: only a succeeded task has outputs to download",
                    t.id,
                    t.status.as_str()
                )));
            }
            download::outputs(&api, &t, &output, &reporter).await?;
            Ok(())
        }
        ClientCommand::Cancel(t) => act(t, Method::POST, "cancel", "cancelled").await,
        ClientCommand::Retry(t) => act(t, Method::POST, "retry", "queued again").await,
        ClientCommand::Delete(t) => act(t, Method::DELETE, "", "deleted").await,
    }
}

/// One input of `submit`.
enum Input {
    File(LocalFile),
    Url(String),
}

impl Input {
    fn parse(text: &str) -> ClientResult<Input> {
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            url::Url::parse(text)
                .map_err(|e| ClientError::usage(format!("{text:?} is not a URL ({e})")))?;
            return Ok(Input::Url(text.to_string()));
        }
        LocalFile::open(Path::new(text)).map(Input::File)
    }
}

async fn submit(a: SubmitArgs) -> ClientResult<()> {
    // Everything that can be checked here is, before a byte goes out.
    let request = options::request(a.profile.as_deref(), &a.options)?;
    let inputs = a
        .inputs
        .iter()
        .map(|text| Ok((text.clone(), Input::parse(text)?)))
        .collect::<ClientResult<Vec<_>>>()?;
    let api = Api::resolve(a.server.server.as_deref())?;
    api.require_login()?;
    let reporter = Reporter::new(a.json.json);
    let mut queued = Vec::with_capacity(inputs.len());
    for (text, input) in inputs {
        let id = match input {
            Input::File(file) => upload::upload(&api, &file, &request, &reporter).await?,
            Input::Url(url) => {
                let body =
                    json!({"url": url, "profile": request.profile, "options": request.options});
                let task: Task = api
                    .json(api.request(Method::POST, "/api/tasks").json(&body))
                    .await?;
                task.id
            }
        };
        reporter.event(json!({"event": "queued", "input": text, "task": id}));
        reporter.info(&format!("{text}: queued as task {id}"));
        reporter.result(&id.to_string());
        queued.push((text, id));
    }
    if !a.wait && a.download.is_none() {
        return Ok(());
    }
    let ended = futures::future::join_all(
        queued
            .iter()
            .map(|(text, id)| watch::follow(&api, *id, text, &reporter)),
    )
    .await;
    let mut failures = Vec::new();
    for ((text, _), task) in queued.iter().zip(ended) {
        let task = task?;
        match outcome(&reporter, text, &task) {
            Ok(()) => {
                if let Some(dir) = &a.download {
                    download::outputs(&api, &task, dir, &reporter).await?;
                }
            }
            Err(why) => failures.push(why),
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(ClientError::failed(format!(
        "{} of {} tasks did not succeed: {}",
        failures.len(),
        queued.len(),
        failures.join("; ")
    )))
}

/// Say how a task ended; `Err` with the reason when it did not succeed.
fn outcome(reporter: &Reporter, label: &str, task: &Task) -> Result<(), String> {
    let colour = reporter.colour;
    match task.status {
        TaskStatus::Succeeded => {
            reporter.info(&format!(
                "{label}: {} ({} output{})",
                render::status(task.status, colour),
                task.outputs.len(),
                if task.outputs.len() == 1 { "" } else { "s" }
            ));
            Ok(())
        }
        status => {
            let why = match &task.error {
                Some(e) => format!("{label} {}: {}: {}", status.as_str(), e.code, e.message),
                None => format!("{label} {}", status.as_str()),
            };
            reporter.info(&why);
            Err(why)
        }
    }
}

async fn tasks(a: TasksArgs) -> ClientResult<()> {
    let api = Api::resolve(a.server.server.as_deref())?;
    api.require_login()?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("max", &a.limit.to_string());
    query.append_pair("commands", "false");
    if let Some(s) = &a.status {
        query.append_pair("status", s);
    }
    let path = format!("/api/tasks?{}", query.finish());
    let list: Vec<Value> = api.json(api.request(Method::GET, &path)).await?;
    if a.json.json {
        for t in &list {
            println!("{t}");
        }
        return Ok(());
    }
    if list.is_empty() {
        eprintln!("No tasks yet: `reelforge submit FILE` makes one.");
        return Ok(());
    }
    let tasks: Vec<Task> = list
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|e| ClientError::failed(format!("unexpected task list: {e}")))?;
    let colour = std::io::stdout().is_terminal() && colour_wanted();
    println!("{}", render::table(&tasks, colour));
    Ok(())
}

async fn show(t: TaskArg, as_json: bool) -> ClientResult<()> {
    let api = Api::resolve(t.server.server.as_deref())?;
    api.require_login()?;
    let value: Value = api
        .json(api.request(Method::GET, &format!("/api/tasks/{}", t.id)))
        .await?;
    if as_json {
        println!("{value}");
        return Ok(());
    }
    let task: Task = serde_json::from_value(value)
        .map_err(|e| ClientError::failed(format!("unexpected task: {e}")))?;
    let colour = std::io::stdout().is_terminal() && colour_wanted();
    println!("{}", render::detail(&task, colour));
    Ok(())
}

/// `cancel`, `retry`, `delete`.
async fn act(t: TaskArg, method: Method, verb: &str, done: &str) -> ClientResult<()> {
    let api = Api::resolve(t.server.server.as_deref())?;
    api.require_login()?;
    let path = match verb {
        "" => format!("/api/tasks/{}", t.id),
        v => format!("/api/tasks/{}/{v}", t.id),
    };
    api.send(api.request(method, &path)).await?;
    eprintln!("Task {} {done}.", t.id);
    Ok(())
}
