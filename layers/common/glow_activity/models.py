"""Request and response models of the seven operations.

These models validate requests, shape responses, and feed OpenAPI and the docs endpoint: the one
source of truth for every field. Field names follow the seed; the contract's additions are marked.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator, model_validator

ONE_MICROSECOND = timedelta(microseconds=1)

# Patterns that the OpenAPI document states and the validators below enforce, with their own words in the 422
# (pydantic's own pattern error would quote the regex).
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL (RequestModel refuses it first, in words)
ShortText = Annotated[str, Field(max_length=200, json_schema_extra={"pattern": NO_NUL})]
IdList = Annotated[list[ShortText], Field(max_length=1000)]


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` includes 2.0; a JSON client may send it for 2. Anything else stays strict (no
    strings, no booleans, no 2.5)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, Field(strict=True), BeforeValidator(_whole_number)]

# The bounds of an optional field stand inside its type, before the validator, or the JSON Schema would carry
# pydantic's own `ge`/`le` words instead of minimum/maximum.
SummaryLimitOrNone = Annotated[int, Field(strict=True, ge=1, le=5000), BeforeValidator(_whole_number)] | None
SummaryOffsetOrNone = Annotated[int, Field(strict=True, ge=0, le=10_000_000), BeforeValidator(_whole_number)] | None

# What date_from / date_to accept, as the OpenAPI document states it: an ISO 8601 date, or a date-time with
# minutes, optional seconds and up to six fractional digits, and an optional offset (none = UTC). JavaScript's
# toISOString() (the Glow client's) matches. Years 1900-2999 keep every bound and its UTC instant representable.
_DAY = r"(?:19|2\d)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
_OFFSET = r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)"
DATE_OR_DATE_TIME = rf"^{_DAY}(?:T{_TIME}{_OFFSET}?)?$"
DateBound = Annotated[str, Field(max_length=40, json_schema_extra={"pattern": DATE_OR_DATE_TIME})]
_BOUND_FORM = (
    "must be an ISO 8601 date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[:SS[.ffffff]] then Z, +HH:MM or nothing "
    "for UTC)"
)


def _reject_nul(value: Any, where: str = "body") -> None:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where} must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(item, str(key))
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item, where)


class RequestModel(BaseModel):
    """Requests reject unknown fields so that a typo never passes silently, and NUL characters, which
    PostgreSQL text cannot hold."""

    # defer_build: each function builds only the models it uses, when first used (every function imports all
    # of them; building the ~30 schemas took ~60 ms of each cold start)
    model_config = ConfigDict(extra="forbid", defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        _reject_nul(data)
        return data


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def parse_bound(value: str, *, upper: bool) -> datetime:
    """An ISO 8601 date or date-time as a UTC instant.

    A date-only lower bound is 00:00 UTC that day; a date-only upper bound is the *exclusive* start of the
    next day. A date-time without offset is UTC; a date-time upper bound is inclusive, so it is returned
    one microsecond later (PostgreSQL's resolution) to be used as an exclusive bound as well.
    """
    if not re.fullmatch(DATE_OR_DATE_TIME, value, re.ASCII):
        raise ValueError(_BOUND_FORM)
    text = value
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError("is not a day of the calendar") from None
        start = datetime.combine(day, time(0), tzinfo=UTC)
        try:
            return start + timedelta(days=1) if upper else start
        except OverflowError:
            raise ValueError("is outside the dates this API can represent") from None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not a day of the calendar") from None
    try:
        instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
        return instant + ONE_MICROSECOND if upper else instant
    except OverflowError:
        raise ValueError("is outside the dates this API can represent") from None


class ActivityFilters(RequestModel):
    date_from: DateBound | None = Field(
        default=None,
        description="Start of the window, inclusive: an ISO 8601 date (00:00 UTC that day) or date-time (UTC when it "
        "has no offset), e.g. `2025-03-01` or `2025-03-01T05:00:00.000Z`. Must be a real calendar day and not after "
        "date_to. null: unbounded.",
        examples=["2025-03-01"],
    )
    date_to: DateBound | None = Field(
        default=None,
        description="End of the window, inclusive: an ISO 8601 date (that whole day) or date-time (that instant), "
        "e.g. `2025-03-31` or `2025-03-31T04:59:59.999Z`. null: unbounded.",
        examples=["2025-03-31"],
    )
    department_ids: IdList = Field(
        default_factory=list,
        description="Profiles in any of these departments (ids). Empty: no filter. A coordinator may name only its own "
        "departments (403 otherwise); an admin's unknown ids match nothing.",
    )
    roles: IdList = Field(
        default_factory=list,
        description="Profiles with any of these active roles (Glow's: superadmin, admin, instructional, member, "
        "guest, custom). Empty: no filter; an unknown role matches nothing.",
    )

    @field_validator("date_from")
    @classmethod
    def _check_from(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bound(value, upper=False)
        return value

    @field_validator("date_to")
    @classmethod
    def _check_to(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bound(value, upper=True)
        return value

    @model_validator(mode="after")
    def _check_order(self) -> ActivityFilters:
        if self.date_from is not None and self.date_to is not None:
            lo, hi = self.window()
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError("date_from must not be after date_to")
        return self

    def window(self) -> tuple[datetime | None, datetime | None]:
        """[lower inclusive, upper exclusive) as UTC instants; None = unbounded."""
        lo = parse_bound(self.date_from, upper=False) if self.date_from is not None else None
        hi = parse_bound(self.date_to, upper=True) if self.date_to is not None else None
        return lo, hi

    def filter_fields(self) -> dict[str, Any]:
        """The filter fields as sent, for a request of another operation over the same filters."""
        return {name: getattr(self, name) for name in ActivityFilters.model_fields}

    def filter_key(self) -> dict[str, Any]:
        return {
            "date_from": self.date_from,
            "date_to": self.date_to,
            "department_ids": sorted(set(self.department_ids)),
            "roles": sorted(set(self.roles)),
        }


# ---------------------------------------------------------------- get
# The deepest 0-based offset (page x page size) a request may ask for: deeper, every row passed over is still read.
# A cursor walks any depth at the cost of a first page (CONTRACT.md, "No single request is unbounded").
MAX_OFFSET = 100_000


def check_offset(page: int, page_size: int, page_field: str) -> None:
    if page * page_size > MAX_OFFSET:
        raise ValueError(
            f"{page_field} x its page size skips {page * page_size:,} rows, past the {MAX_OFFSET:,} an offset may "
            "skip; walk further with cursor (search's next_cursor), which continues after any row as fast as a "
            "first page"
        )


HISTORY_FIELDS = frozenset({"history_page", "history_page_size", "history_sort_by", "history_sort_order"})


class GetActivityRequest(ActivityFilters):
    summary_limit: WholeNumber = Field(
        default=1000, ge=1, le=5000, description="At most this many profile_summary rows (contract addition)."
    )
    summary_offset: WholeNumber = Field(
        default=0, ge=0, le=10_000_000, description="Rows of profile_summary to skip (contract addition)."
    )
    page_limit: SummaryLimitOrNone = Field(
        default=None,
        description="The Glow web client's name for summary_limit; sending both with different values is a 422.",
    )
    page_offset: SummaryOffsetOrNone = Field(
        default=None,
        description="The Glow web client's name for summary_offset; sending both with different values is a 422.",
    )
    summary_profile_id: UUID | None = Field(
        default=None,
        description="Only this profile in profile_summary and resources.profiles (when it is in scope and active in "
        "the window); the totals and facets do not change.",
    )
    history_page: WholeNumber = Field(
        default=0, ge=0, le=10_000_000, description="0-based page of `history`. Naming any history_* field asks for it."
    )
    history_page_size: WholeNumber = Field(default=50, ge=1, le=500, description="Sessions per page of `history`.")
    history_sort_by: Literal["date"] = Field(default="date", description="`history` is ordered by session date.")
    history_sort_order: Literal["asc", "desc"] = Field(
        default="desc", description="Order of `history` by session_created_at (ties by session_id)."
    )
    problems_limit: WholeNumber = Field(
        default=50, ge=0, le=500, description="At most this many of the newest `problems` (contract addition)."
    )

    @model_validator(mode="after")
    def _client_paging_names(self) -> GetActivityRequest:
        """page_limit / page_offset are the Glow client's names for summary_limit / summary_offset."""
        for alias, name in (("page_limit", "summary_limit"), ("page_offset", "summary_offset")):
            value = getattr(self, alias)
            if value is None:
                continue
            if name in self.model_fields_set and getattr(self, name) != value:
                raise ValueError(f"{alias} and {name} name the same thing; they differ")
            setattr(self, name, value)
        if self.wants_history:
            check_offset(self.history_page, self.history_page_size, "history_page")
        return self

    @property
    def wants_history(self) -> bool:
        return bool(self.model_fields_set & HISTORY_FIELDS)

    def history_request(self) -> SearchActivityRequest:
        """The search request whose page is this request's `history`."""
        return SearchActivityRequest(
            **self.filter_fields(),
            page=self.history_page,
            page_size=self.history_page_size,
            sort_order=self.history_sort_order,
        )


class ProfileSummaryItem(ResponseModel):
    profile_id: str
    profile_name: str
    sessions_count: int
    logins_count: int
    grants_count: int
    problems_count: int
    activity_count: int


class ProfileResource(ResponseModel):
    id: str
    name: str
    email: str | None
    department_ids: list[str]
    roles: list[str]


class ActivityResources(ResponseModel):
    profiles: dict[str, ProfileResource] = Field(default_factory=dict)


class FieldState(ResponseModel):
    visible: bool
    disabled: bool


class FacetOption(ResponseModel):
    value: str
    label: str


class AnalyticsFacets(ResponseModel):
    fields: dict[str, FieldState]
    department_options: list[FacetOption]
    cohort_options: list[FacetOption]
    attempt_options: list[FacetOption]
    role_options: list[str]
    date_range_earliest: str | None
    date_range_latest: str | None


class SessionHistory(ResponseModel):
    """search's page under get's summary, with the Glow client's name for its rows."""

    items: list[SessionListItem]
    total_count: int
    page: int
    page_size: int
    total_pages: int


class ProblemListItem(ResponseModel):
    problem_id: str
    type: str
    message: str
    resolved: bool
    profile_id: str | None
    profile_name: str | None
    session_id: str | None
    created_at: str


class GetActivityResponse(ResponseModel):
    sessions_count: int = 0
    active_profiles_count: int = 0
    logins_count: int = 0
    emulations_count: int = 0
    profile_summary: list[ProfileSummaryItem] = Field(default_factory=list)
    profile_summary_total: int = 0
    resources: ActivityResources = Field(default_factory=ActivityResources)
    analytics: AnalyticsFacets | None = None
    history: SessionHistory | None = Field(
        default=None, description="A page of session history when the request names a history_* field; else null."
    )
    problems: list[ProblemListItem] = Field(
        default_factory=list, description="The newest problems of in-scope profiles in the window."
    )
    problems_total: int = Field(default=0, description="How many problems `problems` is the newest of.")


# ---------------------------------------------------------------- search
class SearchActivityRequest(ActivityFilters):
    active: StrictBool | None = Field(default=None, description="Only open (true) or closed (false) sessions.")
    page: WholeNumber = Field(
        default=0, ge=0, le=10_000_000, description="0-based page number; ignored when `cursor` is sent."
    )
    page_size: WholeNumber = Field(default=50, ge=1, le=500, description="Sessions per page.")
    sort_order: Literal["asc", "desc"] = Field(
        default="desc", description="Order of session_created_at (ties by session_id in the same direction)."
    )
    cursor: (
        Annotated[str, Field(min_length=1, max_length=2000, json_schema_extra={"pattern": r"^[A-Za-z0-9_-]+$"})] | None
    ) = Field(
        default=None,
        description="The previous page's `next_cursor`, to continue right after its last row (fast at any depth). "
        "Send the same filters, active, sort_order and page_size again with it: a cursor this endpoint did not "
        "issue, or one issued for other filters, is a 422 (contract addition).",
    )

    @model_validator(mode="after")
    def _bounded_offset(self) -> SearchActivityRequest:
        if self.cursor is None:
            check_offset(self.page, self.page_size, "page")
        return self


class SessionListItem(ResponseModel):
    session_id: str
    profile_id: str
    profile_name: str
    session_created_at: str
    session_updated_at: str
    active: bool
    group_count: int
    run_count: int
    first_run_at: str | None = Field(
        description="The session's first AI run (RFC 3339, UTC); null when it has had none yet."
    )
    last_run_at: str | None = Field(
        description="Its latest AI run; the Glow client's Duration column is last_run_at - first_run_at."
    )
    chat_count: int
    attempt_count: int
    message_count: int
    total_tokens: int
    total_cost: float
    problem_count: int


class SearchActivityResponse(ResponseModel):
    data: list[SessionListItem] = Field(default_factory=list)
    total_count: int = 0
    page: int = 0
    page_size: int = 50
    total_pages: int = 0
    next_cursor: str | None = None


# ---------------------------------------------------------------- problem / resolve
ProblemType = Literal["feature", "bug", "question", "other"]


PROBLEM_TYPES = ("feature", "bug", "question", "other")
# A character that str.strip() keeps and that is not NUL: a message must have one (ECMAScript's \s lacks the
# separators \x1c-\x1f and \x85 that Python strips, so they are named too)
_NOT_BLANK = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"


class CreateProblemRequest(RequestModel):
    type: str = Field(
        description="One of feature, bug, question, other. Case-insensitive on input (`BUG` is `bug`); the "
        "schema lists the canonical spelling.",
        examples=["bug"],
        max_length=40,
        json_schema_extra={"enum": list(PROBLEM_TYPES)},
    )
    message: str = Field(
        description="What is wrong: 1 to 4000 characters once leading and trailing white space is trimmed. "
        "(maxLength holds for any message a client sends untrimmed; the service bounds the trimmed text, so white "
        "space around 4000 characters is accepted too.)",
        json_schema_extra={"pattern": _NOT_BLANK, "maxLength": 4000},
        examples=["The AI answer in this session quoted a student's grade."],
    )
    session_id: UUID | None = Field(
        default=None,
        description="A session the caller can see that the problem is about; its profile becomes the problem's "
        "(unknown or invisible: 404). Without it the problem is about the caller (contract addition).",
    )

    @field_validator("type")
    @classmethod
    def _normalise_type(cls, value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in PROBLEM_TYPES:
            raise ValueError("must be one of feature, bug, question, other")
        return lowered

    @field_validator("message")
    @classmethod
    def _check_message(cls, value: str) -> str:
        trimmed = value.strip()
        if not 1 <= len(trimmed) <= 4000:
            raise ValueError("must be 1 to 4000 characters after trimming")
        return trimmed


class CreateProblemResponse(ResponseModel):
    problem_id: str
    success: bool
    message: str


class ResolveProblemRequest(RequestModel):
    problem_id: UUID = Field(
        description="A problem the caller can see: `problem_id` of problem's answer, or of get's `problems` "
        "(unknown or invisible: 404)."
    )
    resolved: StrictBool = Field(default=True, description="true resolves the problem, false reopens it.")


class ResolveProblemResponse(ResponseModel):
    problem_id: str
    resolved: bool
    updated_at: str


# ---------------------------------------------------------------- refresh
class RefreshRequest(RequestModel):
    """Refresh takes no fields; an empty body or `{}`."""


class RefreshResponse(ResponseModel):
    success: bool
    refreshed_views: list[str]
    invalidated_tags: list[str]


# ---------------------------------------------------------------- export
class ExportRequest(ActivityFilters):
    upload_id: UUID | None = Field(
        default=None,
        description="Poll an export that answered 202: its `upload_id` (only its caller may; else 404). The filters "
        "are then ignored (contract addition).",
    )


class ExportResponse(ResponseModel):
    upload_id: str
    file_name: str
    row_count: int
    download_url: str
    expires_at: str


class ExportPending(ResponseModel):
    upload_id: str
    status: Literal["running", "failed"]
    file_name: str | None = None


# ---------------------------------------------------------------- docs
class DocsRequest(RequestModel):
    entity_id: ShortText | None = Field(
        default=None,
        description="A profile, session or problem id (uuid) the caller can see: `detail` then describes it. "
        "Unknown, invisible or not a uuid: 404.",
    )


class DocsField(ResponseModel):
    name: str
    type: str
    required: bool
    description: str


class DocsResponse(ResponseModel):
    name: str
    type: str
    description: str
    content: str
    fields: list[DocsField]


class OperationParam(ResponseModel):
    name: str
    type: str
    required: bool
    default: Any = None


class OperationInfo(ResponseModel):
    name: str
    description: str
    params: list[OperationParam]
    returns: str
    method: str
    path: str
    roles: list[str]


class PageText(ResponseModel):
    title: str
    description: str


class DocsApiResponse(ResponseModel):
    list: PageText
    detail: PageText
    new: PageText


class ActivityDocsResponse(ResponseModel):
    # `list` is also a field here (the Glow client reads it): the other fields name the builtin in full
    name: str
    type: str
    description: str
    artifact: DocsResponse | None = None
    entries: builtins.list[DocsResponse]
    resources: builtins.list[DocsResponse]
    permissions: builtins.list[OperationInfo]
    api_operations: builtins.list[OperationInfo]
    page_metadata: DocsApiResponse | None = None
    list: PageText | None = Field(default=None, description="page_metadata.list, where the Glow client reads it.")
    detail: PageText | None = Field(default=None, description="page_metadata.detail, where the Glow client reads it.")
    new: PageText | None = Field(default=None, description="page_metadata.new, where the Glow client reads it.")


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    statusCode: int
    message: str
    detail: list[ErrorDetail] | None = None


def dump_with_json_parts(model: BaseModel, parts: dict[str, str]) -> str:
    """`model.model_dump_json()` with each field named in `parts` (left empty, [] or {}, in `model`) replaced by
    the JSON text given for it: for the large parts of an answer that PostgreSQL renders as JSON already,
    whose parsing, validation and serialisation again cost get ~12 ms for 1,000 profiles. An empty field's
    `"name":[]` can only occur structurally (inside a JSON string every quote is escaped), and exactly once is
    checked. The tests validate every response against the OpenAPI schema."""
    body = model.model_dump_json()
    for name, text in parts.items():
        markers = [m for m in (f'"{name}":[]', f'"{name}":{{}}') if body.count(m) == 1]
        if len(markers) != 1:
            raise ValueError(f"{name!r} is not one empty field of {type(model).__name__}")
        body = body.replace(markers[0], f'"{name}":{text}')
    return body


def iso(value: datetime) -> str:
    """RFC 3339 in UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Decimal | float | int) -> float:
    return float(value)
