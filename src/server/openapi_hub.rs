//! The Hub mirror's routes in `ema start`'s OpenAPI document ([`hub_paths`]): the mirror's handlers sit on their own
//! router (behind the step that makes a two-segment `org/name` one routable value, `hub/paths.rs`), so they are
//! described here with utoipa's builders, one operation per route `hub::routes()` serves, with the answers the
//! handlers give (the Hub's JSON bodies, redirects, file bytes, `{"error"}` with `X-Error-Code`).

use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{
    Components, ContentBuilder, OpenApi as Document, Paths, PathsBuilder, RefOr, Required, Schema,
};

/// The name of the Hub's error body in the document's components.
const HUB_ERROR: &str = "HubError";

fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn object() -> Schema {
    ObjectBuilder::new().schema_type(Type::Object).into()
}

fn array_of_objects() -> Schema {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::Object).build())
        .into()
}

/// `{"error": "…"}`: what the mirror answers on an error (the API's security layer adds a `code`).
fn hub_error_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("error", string())
        .required("error")
        .description(Some(
            "an error: `error` says what and how to fix it (the X-Error-Code header names it)",
        ))
        .into()
}

fn json(description: &str, schema: Schema) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

fn error(description: &str) -> Response {
    let r = RefOr::Ref(utoipa::openapi::Ref::from_schema_name(HUB_ERROR));
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(r)).build(),
        )
        .build()
}

fn bare(description: &str) -> Response {
    ResponseBuilder::new().description(description).build()
}

fn bytes(description: &str) -> Response {
    let s: Schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Binary,
        )))
        .into();
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/octet-stream",
            ContentBuilder::new().schema(Some(s)).build(),
        )
        .build()
}

fn path_param(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(string()))
        .build()
}

fn query_param(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(string()))
        .build()
}

const REPO: &str =
    "the model id: `org/name` as Hub clients send it (two segments), or a `name` without an org";
const REV: &str = "`main`, the model's 40-hex commit, or the revision it was downloaded at";

/// The answers every mirror route may give beside its own: the API's refusals and a missing model or revision.
fn operation(
    id: &str,
    summary: &str,
    params: Vec<Parameter>,
    answers: Vec<(&str, Response)>,
) -> Operation {
    let mut b = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .tag("hub")
        .parameters(Some(params));
    for (status, r) in answers {
        b = b.response(status, r);
    }
    b.response(
        "401",
        error("a token is configured and the request has none or another"),
    )
    .response(
        "403",
        error("Host or Origin not allowed, or the model is gated"),
    )
    .build()
}

fn repo_answers(ok: Response) -> Vec<(&'static str, Response)> {
    vec![
        ("200", ok),
        (
            "307",
            bare("the model was renamed: the same request at its new id (Location)"),
        ),
        (
            "404",
            error("no such model, revision or path on this mirror"),
        ),
    ]
}

/// Every route of the mirror (on a listener serving the enhanced set), each as `GET` (which also answers `HEAD`) or,
/// for `paths-info`, `POST`.
pub fn hub_paths() -> Paths {
    let repo = || path_param("repo", REPO);
    let rev = || path_param("rev", REV);
    let file = || path_param("path", "a file's path in the model (`/`-separated)");
    let get = |op: Operation| PathItem::new(HttpMethod::Get, op);
    let list = operation(
        "hub_list_models",
        "The models this mirror serves (the Hub's `list_models`)",
        vec![
            query_param("search", "only ids containing this (case-insensitive)"),
            query_param("author", "only models of this org"),
            query_param("pipeline_tag", "only models of this task"),
        ],
        vec![("200", json("the models, by id", array_of_objects()))],
    );
    let info = operation(
        "hub_model_info",
        "A model's info: id, commit (`sha`), `siblings` (`?blobs=true`: sizes and LFS hashes)",
        vec![repo()],
        repo_answers(json("the model's info", object())),
    );
    let revision = operation(
        "hub_revision_info",
        "A model's info at a revision",
        vec![repo(), rev()],
        repo_answers(json("the model's info at the revision", object())),
    );
    let tree = operation(
        "hub_tree",
        "The files and folders of a model at a revision (paginated with `Link`)",
        vec![repo(), rev()],
        repo_answers(json("the entries", array_of_objects())),
    );
    let tree_under = operation(
        "hub_tree_path",
        "The files and folders under a folder of a model",
        vec![repo(), rev(), file()],
        repo_answers(json("the entries", array_of_objects())),
    );
    let mut paths_info_answers = repo_answers(json("the entries asked for", array_of_objects()));
    paths_info_answers.push(("413", error("the request body is over 1 MiB")));
    let mut paths_info = operation(
        "hub_paths_info",
        "The entries of the paths named in the body (`paths=…` form fields, or JSON `{\"paths\": […]}`)",
        vec![repo(), rev()],
        paths_info_answers,
    );
    paths_info.request_body = Some(RefOr::T(
        RequestBodyBuilder::new()
            .description(Some(
                "`paths=a&paths=b` (application/x-www-form-urlencoded) or `{\"paths\": [\"a\", \"b\"]}`; \
                 paths that are no entry are left out of the answer",
            ))
            .build(),
    ));
    let mut resolve_answers =
        repo_answers(bytes("the file (the whole of it, or the range asked for)"));
    resolve_answers.extend([
        ("206", bytes("the range asked for (`Range`)")),
        (
            "302",
            bare("an LFS file: a signed location under /cdn/ (Location)"),
        ),
        ("416", error("the range asked for is not in the file")),
    ]);
    let resolve = operation(
        "hub_resolve",
        "A file of a model at a revision, with the Hub's `X-Repo-Commit`, `ETag` and `X-Linked-*` headers",
        vec![repo(), rev(), file()],
        resolve_answers,
    );
    let cdn = operation(
        "hub_cdn",
        "An LFS file by its sha256, at the signed location `resolve` redirects to",
        vec![
            path_param("sha", "the file's sha256"),
            query_param("X-Amz-Signature", "the signature `resolve` gave"),
            query_param("X-Amz-Date", "part of the signed location"),
            query_param("X-Amz-Expires", "part of the signed location"),
            query_param("X-Amz-Algorithm", "part of the signed location"),
        ],
        vec![
            ("200", bytes("the file")),
            ("206", bytes("the range asked for (`Range`)")),
            ("404", error("no file with this hash")),
            ("416", error("the range asked for is not in the file")),
        ],
    );
    PathsBuilder::new()
        .path("/api/models", get(list))
        .path("/api/models/{repo}", get(info))
        .path("/api/models/{repo}/revision/{rev}", get(revision))
        .path("/api/models/{repo}/tree/{rev}", get(tree))
        .path("/api/models/{repo}/tree/{rev}/{path}", get(tree_under))
        .path(
            "/api/models/{repo}/paths-info/{rev}",
            PathItem::new(HttpMethod::Post, paths_info),
        )
        .path("/{repo}/resolve/{rev}/{path}", get(resolve))
        .path("/cdn/{sha}", get(cdn))
        .build()
}

/// Add the mirror's routes, their error body and their tag to `doc`.
pub fn add_hub(doc: &mut Document) {
    for (path, item) in hub_paths().paths {
        doc.paths.paths.insert(path, item);
    }
    let c = doc.components.get_or_insert_with(Components::new);
    c.schemas
        .insert(HUB_ERROR.to_string(), RefOr::T(hub_error_schema()));
    doc.tags.get_or_insert_with(Vec::new).push(
        utoipa::openapi::tag::TagBuilder::new()
            .name("hub")
            .description(Some(
                "the Hub mirror of the store (the protocol huggingface_hub and hf-hub download with)",
            ))
            .build(),
    );
}
