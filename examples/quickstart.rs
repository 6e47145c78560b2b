//! The quickstart: a todo list, on the default in-memory store or on a SQLite file.
//!
//! `cargo run --example quickstart` (in memory), or
//! `cargo run --example quickstart -- --sqlite todos.db` (a file, kept across runs: each run
//! appends to the same list, and the events of earlier runs are still there).
//!
//! Declares a state, its events and its actions with the act macros, executes a handful of
//! actions (two of them rejected), then prints the committed events and the final state.

use act::error::chain;
use act::prelude::*;

/// The state: a todo list.
#[state(name = "TodoList", actions(AddTodo, CompleteTodo, RenameList))]
#[derive(Debug, Clone, Default)]
pub struct TodoList {
    pub title: String,
    pub todos: Vec<Todo>,
}

/// One todo.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Todo {
    pub id: u32,
    pub text: String,
    pub done: bool,
}

/// The events of a todo list: the variant name is the event name.
#[emits(TodoList)]
#[derive(Debug, Clone)]
pub enum TodoEvent {
    TodoAdded { id: u32, text: String },
    TodoCompleted { id: u32 },
    ListRenamed { title: String },
}

/// The reducer: exhaustive over the events.
impl Patch<TodoEvent> for TodoList {
    fn patch(&mut self, event: &TodoEvent) {
        match event {
            TodoEvent::TodoAdded { id, text } => self.todos.push(Todo {
                id: *id,
                text: text.clone(),
                done: false,
            }),
            TodoEvent::TodoCompleted { id } => {
                if let Some(t) = self.todos.iter_mut().find(|t| t.id == *id) {
                    t.done = true;
                }
            }
            TodoEvent::ListRenamed { title } => self.title = title.clone(),
        }
    }
}

/// Add a todo to the list.
#[action(TodoList)]
#[given(has_room = "a list holds at most 10 todos")]
pub struct AddTodo {
    pub text: String,
}

fn has_room(list: &TodoList) -> bool {
    list.todos.len() < 10
}

impl Handle for AddTodo {
    fn handle(&self, list: &TodoList, _: &Target) -> Emit<TodoEvent> {
        let id = list.todos.len() as u32 + 1;
        Ok(vec![TodoEvent::TodoAdded {
            id,
            text: self.text.clone(),
        }])
    }
}

/// Mark a todo done.
#[action(TodoList)]
pub struct CompleteTodo {
    pub id: u32,
}

impl Handle for CompleteTodo {
    fn handle(&self, list: &TodoList, _: &Target) -> Emit<TodoEvent> {
        match list.todos.iter().find(|t| t.id == self.id) {
            None => Err(format!("no todo #{}", self.id).into()),
            Some(t) if t.done => Ok(vec![]), // already done: nothing to commit
            Some(_) => Ok(vec![TodoEvent::TodoCompleted { id: self.id }]),
        }
    }
}

/// Rename the list: the payload passes through as the `ListRenamed` event.
#[action(TodoList, emit = TodoEvent::ListRenamed)]
pub struct RenameList {
    pub title: String,
}

/// The store named on the command line: `--sqlite <FILE>`, or in memory.
async fn build() -> Result<(Act, String), Box<dyn std::error::Error>> {
    let builder = act().with_state::<TodoList>();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok((builder.build()?, "memory".to_owned())),
        [flag, file] if flag == "--sqlite" => {
            let store = act::adapters::SqliteStore::open(file).await?;
            Ok((
                builder.with_store(store).build()?,
                format!("sqlite file {file}"),
            ))
        }
        _ => Err("usage: quickstart [--sqlite <FILE>]".into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (app, store) = build().await?;
    let ada = Actor::new("u-1", "Ada");
    let stream = "todos-ada";
    let target = || Target::new(stream, ada.clone());

    // On a file, an earlier run's events are still there: this run continues the list.
    let before = app.load::<TodoList>(stream).await?;
    println!(
        "store: {store}; {stream} is at version {} ({} todos) before this run\n",
        before.version,
        before.state.todos.len()
    );

    app.execute(
        RenameList {
            title: "Groceries".into(),
        },
        target(),
    )
    .await?;
    for text in ["milk", "bread"] {
        // The invariant (at most 10 todos) rejects adds once the list is full.
        if let Err(e) = app.execute(AddTodo { text: text.into() }, target()).await {
            println!("rejected: {}", chain(&e));
        }
    }
    let list = app.load::<TodoList>(stream).await?.state;
    if let Some(open) = list.todos.iter().find(|t| !t.done) {
        app.execute(CompleteTodo { id: open.id }, target()).await?;
    }

    // The JSON entry point validates against the action's schema before anything runs.
    let bad = app
        .execute_json("AddTodo", target(), serde_json::json!({ "text": 42 }))
        .await;
    if let Err(e) = bad {
        println!("rejected: {}", chain(&e));
    }
    if let Err(e) = app.execute(CompleteTodo { id: 99 }, target()).await {
        println!("rejected: {}", chain(&e));
    }

    println!("\nevents of {stream}:");
    println!("{:>4} {:>4}  {:<14} data", "id", "ver", "name");
    for e in app.query(&Query::stream(stream)).await? {
        println!(
            "{:>4} {:>4}  {:<14} {}",
            e.id,
            e.version,
            e.name,
            e.data.get()
        );
    }

    let snap = app.load::<TodoList>(stream).await?;
    println!(
        "\nstate of {stream} at version {} ({} events, cache hit: {}):",
        snap.version, snap.patches, snap.cache_hit
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::to_value(&snap.state)?)?
    );
    app.shutdown().await?;
    Ok(())
}
