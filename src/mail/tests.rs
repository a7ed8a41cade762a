use lettre::message::Mailbox;
use lettre::message::header::Header;
use url::Url;

use super::compose::*;

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn mailbox(s: &str) -> Mailbox {
    s.parse().unwrap()
}

fn task(event: TaskMailKind) -> TaskMail {
    TaskMail {
        message_id: message_id(
            "0190a0a0-0000-7000-8000-000000000001.succeeded",
            &url("https://reelforge.example/"),
        ),
        to: mailbox("Rosa <rosa@example.com>"),
        from: mailbox("Reelforge <noreply@reelforge.example>"),
        username: "rosa".into(),
        event,
        input_name: "clip.mp4".into(),
        profile: "compress".into(),
        outputs: vec![
            MailOutput {
                name: "clip_small.mp4".into(),
                size_bytes: 1_400_000,
                duration_seconds: Some(75.4),
                download_url: url("https://reelforge.example/api/tasks/t1/outputs/clip_small.mp4"),
            },
            MailOutput {
                name: "clip.jpg".into(),
                size_bytes: 48_213,
                duration_seconds: None,
                download_url: url("https://reelforge.example/api/tasks/t1/outputs/clip.jpg"),
            },
        ],
        task_url: url("https://reelforge.example/#/tasks/t1"),
        error: None,
        unsubscribe_url: url("https://reelforge.example/api/unsubscribe?token=abc&x=1"),
    }
}

/// The header block of a formatted message, folded lines joined.
fn header_lines(message: &lettre::Message) -> Vec<String> {
    let raw = String::from_utf8(message.formatted()).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap();
    let mut lines: Vec<String> = vec![];
    for line in head.split("\r\n") {
        match (line.starts_with([' ', '\t']), lines.last_mut()) {
            (true, Some(last)) => last.push_str(line),
            _ => lines.push(line.to_string()),
        }
    }
    lines
}

fn has_line(lines: &[String], wanted: &str) {
    assert!(
        lines.iter().any(|l| l == wanted),
        "{wanted:?} not among\n{}",
        lines.join("\n")
    );
}

fn starts(lines: &[String], prefix: &str) -> String {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} among\n{}", lines.join("\n")))
        .clone()
}

#[test]
fn a_task_mail_has_every_header_and_both_parts() {
    let m = task_mail(&task(TaskMailKind::Succeeded)).unwrap();
    let lines = header_lines(&m);
    has_line(&lines, "From: Reelforge <noreply@reelforge.example>");
    has_line(&lines, "To: Rosa <rosa@example.com>");
    has_line(&lines, "Subject: Your file is ready: clip.mp4");
    has_line(
        &lines,
        "Message-ID: <0190a0a0-0000-7000-8000-000000000001.succeeded@reelforge.example>",
    );
    has_line(
        &lines,
        "List-Unsubscribe: <https://reelforge.example/api/unsubscribe?token=abc&x=1>",
    );
    has_line(&lines, "List-Unsubscribe-Post: List-Unsubscribe=One-Click");
    has_line(&lines, "Auto-Submitted: auto-generated");
    has_line(&lines, "MIME-Version: 1.0");
    assert!(starts(&lines, "Date: ").len() > "Date: ".len() + 20);
    assert!(starts(&lines, "Content-Type: ").starts_with("Content-Type: multipart/alternative;"));
    let raw = String::from_utf8(m.formatted()).unwrap();
    assert!(
        raw.contains("Content-Type: text/plain; charset=utf-8"),
        "{raw}"
    );
    assert!(
        raw.contains("Content-Type: text/html; charset=utf-8"),
        "{raw}"
    );
    // The text part comes first: clients show the last part they can render.
    assert!(raw.find("text/plain") < raw.find("text/html"));
}

#[test]
fn subjects_say_what_happened() {
    for (event, subject) in [
        (TaskMailKind::Succeeded, "Your file is ready: clip.mp4"),
        (TaskMailKind::Failed, "Processing failed: clip.mp4"),
        (TaskMailKind::Cancelled, "Processing cancelled: clip.mp4"),
    ] {
        assert_eq!(task_content(&task(event)).subject, subject);
        let lines = header_lines(&task_mail(&task(event)).unwrap());
        has_line(&lines, &format!("Subject: {subject}"));
    }
    // A line break in a file name stays out of the header block.
    let mut t = task(TaskMailKind::Succeeded);
    t.input_name = "a\r\nBcc: someone@example.com.mp4".into();
    assert_eq!(
        task_content(&t).subject,
        "Your file is ready: a  Bcc: someone@example.com.mp4"
    );
    let lines = header_lines(&task_mail(&t).unwrap());
    assert!(!lines.iter().any(|l| l.starts_with("Bcc")), "{lines:#?}");
}

#[test]
fn the_body_lists_outputs_with_sizes_durations_and_links() {
    let c = task_content(&task(TaskMailKind::Succeeded));
    for part in [&c.text, &c.html] {
        for needle in [
            "rosa",
            "clip.mp4",
            "compress",
            "clip_small.mp4",
            "1.4 MB, 1:15",
            "clip.jpg",
            "48.2 kB)",
            "https://reelforge.example/api/tasks/t1/outputs/clip_small.mp4",
            "https://reelforge.example/api/tasks/t1/outputs/clip.jpg",
            "https://reelforge.example/#/tasks/t1",
            "notifications are on",
        ] {
            assert!(part.contains(needle), "{needle} not in\n{part}");
        }
    }
    assert!(
        c.text
            .contains("https://reelforge.example/api/unsubscribe?token=abc&x=1")
    );
    // In HTML, `&` of a URL is escaped inside the attribute.
    assert!(
        c.html
            .contains("href=\"https://reelforge.example/api/unsubscribe?token=abc&amp;x=1\""),
        "{}",
        c.html
    );
    assert!(
        c.html
            .contains("<a href=\"https://reelforge.example/#/tasks/t1\">")
    );
    assert!(c.html.starts_with("<!DOCTYPE html>"));
    for banned in ["<img", "<script", "<link", "<style", "http://"] {
        assert!(!c.html.contains(banned), "{banned} in\n{}", c.html);
    }
    assert!(!c.text.contains("What went wrong"));
}

#[test]
fn a_failure_says_what_went_wrong_and_a_cancel_says_so() {
    let mut t = task(TaskMailKind::Failed);
    t.outputs.clear();
    t.error = Some("ffmpeg could not read the input: <moov atom not found>".into());
    let c = task_content(&t);
    assert!(
        c.text
            .contains("clip.mp4 could not be processed with the profile compress.")
    );
    assert!(
        c.text
            .contains("What went wrong: ffmpeg could not read the input: <moov atom not found>"),
        "{}",
        c.text
    );
    assert!(c.html.contains("&lt;moov atom not found&gt;"), "{}", c.html);
    assert!(!c.text.contains("The result"));
    t.error = None;
    assert!(
        task_content(&t)
            .text
            .contains("What went wrong: no reason was recorded")
    );

    let mut t = task(TaskMailKind::Cancelled);
    t.outputs.clear();
    t.error = Some("cancelled by the user".into());
    let c = task_content(&t);
    assert!(
        c.text
            .contains("Processing clip.mp4 with the profile compress was cancelled.")
    );
    assert!(!c.text.contains("What went wrong"));
}

#[test]
fn user_text_is_escaped_in_html() {
    let mut t = task(TaskMailKind::Failed);
    t.username = "<i>rosa</i>".into();
    t.input_name = "<script>alert('x')</script>&\".mp4".into();
    t.profile = "<b>p</b>".into();
    t.error = Some("<img src=x onerror=alert(1)>".into());
    t.outputs[0].name = "<a href=\"evil\">out</a>.mp4".into();
    let c = task_content(&t);
    for raw in ["<script", "<i>", "<b>p", "<img", "href=\"evil\""] {
        assert!(!c.html.contains(raw), "{raw} in\n{}", c.html);
    }
    for escaped in [
        "&lt;i&gt;rosa&lt;/i&gt;",
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;.mp4",
        "&lt;b&gt;p&lt;/b&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "&lt;a href=&quot;evil&quot;&gt;out&lt;/a&gt;.mp4",
    ] {
        assert!(c.html.contains(escaped), "{escaped} not in\n{}", c.html);
    }
    // The text part keeps the text as it is.
    assert!(c.text.contains("<script>alert('x')</script>&\".mp4"));
    assert_eq!(
        escape_html("a&b<c>d\"e'f"),
        "a&amp;b&lt;c&gt;d&quot;e&#39;f"
    );

    let c = password_reset_content("<u>", &url("https://r.example/reset?t=1&u=2"), 30);
    assert!(c.html.contains("Hello &lt;u&gt;,"));
    assert!(
        c.html
            .contains("href=\"https://r.example/reset?t=1&amp;u=2\"")
    );
    let c = endpoint_disabled_content(
        "<u>",
        "https://hooks.example/<x>",
        "it answered <410 Gone>",
        &url("https://r.example/#/settings"),
    );
    assert!(
        c.html
            .contains("<code>https://hooks.example/&lt;x&gt;</code>")
    );
    assert!(c.html.contains("because it answered &lt;410 Gone&gt;."));
    let c = test_content(&mailbox("\"<Reel>\" <noreply@r.example>"));
    assert!(!c.html.contains("<Reel>"), "{}", c.html);
}

#[test]
fn sizes_and_durations_read_like_people_write_them() {
    for (bytes, text) in [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1500, "1.5 kB"),
        (48_213, "48.2 kB"),
        (999_949, "999.9 kB"),
        (999_950, "1.0 MB"),
        (1_400_000, "1.4 MB"),
        (2_000_000_000, "2.0 GB"),
        (u64::MAX, "18.4 EB"),
    ] {
        assert_eq!(human_size(bytes), text, "{bytes}");
    }
    for (seconds, text) in [
        (0.0, Some("0:00")),
        (0.4, Some("0:00")),
        (9.6, Some("0:10")),
        (75.4, Some("1:15")),
        (599.0, Some("9:59")),
        (3600.0, Some("1:00:00")),
        (3725.2, Some("1:02:05")),
        (-1.0, None),
        (f64::NAN, None),
        (f64::INFINITY, None),
    ] {
        assert_eq!(human_duration(seconds).as_deref(), text, "{seconds}");
    }
}

#[test]
fn the_other_messages() {
    let to = mailbox("rosa@example.com");
    let from = mailbox("Reelforge <noreply@reelforge.example>");
    let m = password_reset_mail(
        "<r1@reelforge.example>",
        to.clone(),
        from.clone(),
        "rosa",
        url("https://reelforge.example/#/reset?token=xyz"),
        30,
    )
    .unwrap();
    let lines = header_lines(&m);
    has_line(&lines, "Subject: Reset your Reelforge password");
    has_line(&lines, "Message-ID: <r1@reelforge.example>");
    has_line(&lines, "To: rosa@example.com");
    assert!(!lines.iter().any(|l| l.starts_with("List-Unsubscribe")));
    let c = password_reset_content(
        "rosa",
        &url("https://reelforge.example/#/reset?token=xyz"),
        30,
    );
    assert!(c.text.contains("within 30 minutes"));
    assert!(
        c.text
            .contains("https://reelforge.example/#/reset?token=xyz")
    );

    let m = endpoint_disabled_mail(
        "<e1@reelforge.example>",
        to.clone(),
        from.clone(),
        "rosa",
        "https://hooks.example/in",
        "it answered 410 Gone",
        url("https://reelforge.example/#/settings"),
    )
    .unwrap();
    has_line(
        &header_lines(&m),
        "Subject: A webhook endpoint was disabled",
    );
    let c = endpoint_disabled_content(
        "rosa",
        "https://hooks.example/in",
        "it answered 410 Gone",
        &url("https://reelforge.example/#/settings"),
    );
    assert!(c.text.contains("https://hooks.example/in"));
    assert!(c.text.contains("because it answered 410 Gone."));
    assert!(c.text.contains("https://reelforge.example/#/settings"));

    let m = test_mail("<t1@reelforge.example>", to, from).unwrap();
    let lines = header_lines(&m);
    has_line(&lines, "Subject: Reelforge test e-mail");
    has_line(&lines, "From: Reelforge <noreply@reelforge.example>");
    has_line(&lines, "Message-ID: <t1@reelforge.example>");
    assert!(starts(&lines, "Content-Type: ").contains("multipart/alternative"));
}

#[test]
fn message_ids_and_headers_round_trip() {
    assert_eq!(
        message_id("abc", &url("https://reelforge.example:8443/base/")),
        "<abc@reelforge.example>"
    );
    assert_eq!(message_id_at(7, "example.com"), "<7@example.com>");
    let h = ListUnsubscribe(url("https://r.example/u?t=1"));
    assert_eq!(
        ListUnsubscribe::parse("<https://r.example/u?t=1>").unwrap(),
        h
    );
    assert!(ListUnsubscribe::parse("https://r.example/u").is_err());
    assert!(ListUnsubscribePost::parse("List-Unsubscribe=One-Click").is_ok());
    assert!(ListUnsubscribePost::parse("yes").is_err());
}
