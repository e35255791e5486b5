/**
 * The Glow web client's reads of this API (its activity and session pages; README "Point the Glow web client at
 * this API"), typed the way the client types
 * them: `InputOf` / `OutputOf` over the `paths` that openapi-typescript generates from our openapi.json, and the
 * client's own compiler flags. `npm run check` (run by tests/test_client_types.py) fails when we drop, rename or
 * retype a field the page reads.
 */
import type { paths } from "./generated/activity";

// ---- the client's lib/api/types.ts helpers, reduced to what these pages use
type PathKey = Extract<keyof paths, string>;
type Post<P extends PathKey> = paths[P] extends { post: infer O } ? O : never;
type InputOf<P extends PathKey> =
  Post<P> extends { requestBody?: { content: { "application/json": infer B } } } ? { body: B } : { body?: never };
type OutputOf<P extends PathKey> =
  Post<P> extends { responses: { 200: { content: { "application/json": infer A } } } } ? A : never;

const GET = "/api/v5/artifacts/activity/get";
const DOCS = "/api/v5/artifacts/activity/docs";
const REFRESH = "/api/v5/artifacts/activity/refresh";

type ActivityBundleIn = InputOf<typeof GET>;
type ActivityBundleOut = OutputOf<typeof GET>;
type ActivityListOut = NonNullable<ActivityBundleOut["history"]>;
type DocsIn = InputOf<typeof DOCS>;
type DocsOut = OutputOf<typeof DOCS>;
type RefreshIn = InputOf<typeof REFRESH>;

declare function post<I, O>(path: string, input: I, init?: { headers?: Record<string, string> }): Promise<O>;
declare function formatDuration(milliseconds: number): string; // the page's "1h 5m"

// ---- the activity page's request: a field is left out when the user has not set it
export async function loadActivityPage(q: {
  startDate?: string;
  endDate?: string;
  departmentIds?: string[];
  roles?: string[];
  activityPage?: number;
  activityPageSize?: number;
  summaryProfileId?: string;
}): Promise<void> {
  const activityPage = q.activityPage ?? 0;
  const activityPageSize = q.activityPageSize ?? 50;
  const input: ActivityBundleIn = {
    body: {
      ...(q.startDate && { date_from: q.startDate }),
      ...(q.endDate && { date_to: q.endDate }),
      ...(q.departmentIds?.length && { department_ids: q.departmentIds }),
      ...(q.roles?.length && { roles: q.roles }),
      page_limit: 50,
      page_offset: 0,
      // the page writes `summary_profile_id: summaryProfileId` (possibly undefined), which JSON leaves out; under
      // exactOptionalPropertyTypes a generated optional field never takes `undefined`, so it is spread here
      ...(q.summaryProfileId && { summary_profile_id: q.summaryProfileId }),
      history_page: activityPage,
      history_page_size: activityPageSize,
      history_sort_by: "date",
      history_sort_order: "desc",
    },
  };
  const bundle = await post<ActivityBundleIn, ActivityBundleOut>(GET, input, { headers: { "X-Bypass-Cache": "1" } });

  // four metric cards
  const cards: number[] = [
    bundle.sessions_count,
    bundle.active_profiles_count,
    bundle.logins_count,
    bundle.emulations_count,
  ];

  // the summary card and its profile picker
  const summary = (bundle.profile_summary ?? []).map((row) => ({
    id: row.profile_id,
    name: row.profile_name,
    counts: [row.sessions_count, row.logins_count, row.grants_count, row.problems_count] as const,
    total: row.activity_count,
  }));

  // the sessions table: "No sessions found" when history is missing
  const history: ActivityListOut = bundle.history ?? {
    items: [],
    total_count: 0,
    page: activityPage,
    page_size: activityPageSize,
    total_pages: 0,
  };
  const rows = history.items.map((item) => ({
    session: item.session_id,
    profile: item.profile_id,
    who: item.profile_name,
    when: new Date(item.session_created_at),
    open: item.active,
    counts: [item.group_count, item.run_count, item.chat_count, item.attempt_count, item.message_count] as const,
    // the Duration column: last_run_at - first_run_at, "-" when the session has had no run
    duration:
      item.first_run_at && item.last_run_at
        ? formatDuration(new Date(item.last_run_at).getTime() - new Date(item.first_run_at).getTime())
        : "-",
    problems: item.problem_count,
    tokens: item.total_tokens,
    cost: item.total_cost.toFixed(2),
  }));
  const paging: [number, number, number] = [history.page, history.page_size, history.total_pages];
  const empty: boolean = bundle.history?.items.length === undefined;

  // the problems panel: "No problems found" when missing
  const problems = (bundle.problems ?? []).map((p) => ({
    id: p.problem_id,
    kind: p.type,
    text: p.message,
    done: p.resolved,
    who: p.profile_name ?? "",
    when: new Date(p.created_at),
  }));

  // the filter toolbar
  const facets = bundle.analytics;
  const visible: boolean[] = facets
    ? [
        facets.fields["date_range"]?.visible ?? false,
        facets.fields["departments"]?.visible ?? false,
        facets.fields["cohorts"]?.visible ?? false,
        facets.fields["roles"]?.visible ?? false,
        facets.fields["attempts"]?.visible ?? false,
      ]
    : [];
  const departments = (facets?.department_options ?? []).map((o) => ({ value: o.value, label: o.label }));
  const cohorts = (facets?.cohort_options ?? []).map((o) => o.label);
  const attempts = facets?.fields["attempts"]?.visible ? (facets.attempt_options ?? []).map((o) => o.value) : [];
  const earliest: string | null | undefined = facets?.date_range_earliest;

  console.log(cards, summary, rows, paging, empty, problems, visible, departments, cohorts, attempts, earliest);
}

// ---- page titles
export async function activityMetadata(): Promise<{ title: string; description: string }> {
  const docs = await post<DocsIn, DocsOut>(DOCS, { body: {} });
  if (!docs.list) throw new Error("no list page text");
  return { title: docs.list.title, description: docs.list.description };
}

export async function sessionMetadata(sessionId: string): Promise<{ title: string; description: string }> {
  const docs = await post<DocsIn, DocsOut>(DOCS, { body: { entity_id: sessionId } });
  if (!docs.detail) throw new Error("no detail page text");
  return { title: docs.detail.title, description: docs.detail.description };
}

// ---- the Refresh button: the answer is ignored, a non-2xx shows "Failed to refresh"
export async function refreshButton(): Promise<void> {
  await post<RefreshIn, unknown>(REFRESH, { body: {} });
}
