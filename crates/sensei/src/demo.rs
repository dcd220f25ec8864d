//! Generated demo conversations for `mentorfy seed-demo`: three domains (SaaS customer support, a career
//! coach, a sales assistant), several intents each, text composed from templates and slot values, happy paths
//! and failures at realistic rates. Deterministic: conversation `i` of a seed is the same whatever `count`, and
//! its ids, text and message counts do not depend on `now` (only its timestamps do). No I/O here.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime, Weekday};

/// Bumped when the generator's output changes for a given seed.
pub const GENERATOR_VERSION: u32 = 1;
/// How far back conversations go.
pub const SPREAD_DAYS: i64 = 30;
/// Fewest and most messages in a conversation.
pub const MIN_MESSAGES: usize = 2;
pub const MAX_MESSAGES: usize = 30;

/// A generated conversation, ready to send to the track API.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConversation {
    /// `demo-<seed>-<index>`.
    pub id: String,
    /// `production` (about 90 %) or `staging`.
    pub environment: String,
    pub user_id: Option<String>,
    pub agent_id: String,
    /// `domain`, `intent`, `channel`, `plan`.
    pub metadata: Map<String, Value>,
    pub messages: Vec<DemoMessage>,
    /// What went wrong, as generated (ground truth for checking detectors; not sent to the server).
    pub failures: Vec<FailureKind>,
}

/// A generated message.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoMessage {
    /// `m_<conversation id>_<n>`.
    pub id: String,
    /// `user`, `assistant` or `tool`.
    pub role: &'static str,
    pub content: String,
    /// Strictly increasing within a conversation, in the last [`SPREAD_DAYS`] days, millisecond precision.
    pub at: OffsetDateTime,
    pub metadata: Map<String, Value>,
}

/// The failures the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// The user is annoyed: "this is useless", caps, "!!!".
    Frustration,
    /// The user asks the same thing again.
    RepeatedQuestion,
    /// The agent says it cannot help.
    Refusal,
    /// The agent sends the same reply twice in a row.
    RepetitionLoop,
    /// The user asks for a human.
    Escalation,
    /// A tool call failed (a `tool` message with `error` metadata, or `tool_error` on the reply).
    ToolError,
    /// A reply took over ten seconds (`latency_ms` metadata).
    SlowTurn,
    /// An empty or error reply.
    EmptyReply,
    /// The user left right after a failed turn.
    Abandonment,
}

impl FailureKind {
    pub const ALL: [FailureKind; 9] = [
        FailureKind::Frustration,
        FailureKind::RepeatedQuestion,
        FailureKind::Refusal,
        FailureKind::RepetitionLoop,
        FailureKind::Escalation,
        FailureKind::ToolError,
        FailureKind::SlowTurn,
        FailureKind::EmptyReply,
        FailureKind::Abandonment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Frustration => "frustration",
            FailureKind::RepeatedQuestion => "repeated_question",
            FailureKind::Refusal => "refusal",
            FailureKind::RepetitionLoop => "repetition_loop",
            FailureKind::Escalation => "escalation",
            FailureKind::ToolError => "tool_error",
            FailureKind::SlowTurn => "slow_turn",
            FailureKind::EmptyReply => "empty_reply",
            FailureKind::Abandonment => "abandonment",
        }
    }
}

/// `count` conversations for `seed`, with timestamps in the [`SPREAD_DAYS`] days before `now`. Lazy: each is
/// built when the iterator reaches it.
pub fn generate(seed: u64, count: usize, now: OffsetDateTime) -> impl Iterator<Item = DemoConversation> {
    let now = now.to_offset(time::UtcOffset::UTC);
    (0..count).map(move |i| conversation(seed, i as u64, now))
}

// ---------------------------------------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------------------------------------

struct Domain {
    name: &'static str,
    agent: &'static str,
    model: &'static str,
    intents: &'static [Intent],
}

struct Intent {
    name: &'static str,
    /// The user's first message.
    openers: &'static [&'static str],
    /// The agent's first answer.
    answers: &'static [&'static str],
    /// Later user turns.
    follow_ups: &'static [&'static str],
    /// Answers to later turns.
    replies: &'static [&'static str],
    /// A tool the agent calls, and a successful result.
    tool: Option<(&'static str, &'static str)>,
}

const SUPPORT: Domain = Domain {
    name: "support",
    agent: "nimbus-support",
    model: "claude-sonnet-4-5",
    intents: &[
        Intent {
            name: "billing_question",
            openers: &[
                "Hi, I was charged {amount} on {date} but I'm on the {plan} plan. Can you explain?",
                "why is my invoice {invoice} higher than last month?",
                "I see two charges of {amount} this month, is that a mistake?",
                "Hello! Where can I download the invoice for {date}? Our accountant needs it.",
            ],
            answers: &[
                "I checked invoice {invoice}: it includes {seats} seats on the {plan} plan, prorated from {date}. That is why the total is {amount}.",
                "Thanks for reaching out. The second charge of {amount} is a prorated upgrade for {seats} extra seats added on {date}.",
                "You can download every invoice under Settings → Billing → Invoices. Invoice {invoice} is the one from {date}.",
            ],
            follow_ups: &[
                "ok, and can I switch to annual billing to save money?",
                "can you send the invoice to {email} instead?",
                "we removed some users last week, will that lower the next bill?",
                "does the price include VAT?",
            ],
            replies: &[
                "Yes: annual billing on {plan} is two months free. You can switch under Settings → Billing → Plan.",
                "Done, future invoices will go to {email}.",
                "Seats removed before the renewal date are credited on the next invoice, so it will be lower.",
                "Prices are shown without VAT; it is added at checkout based on your billing address.",
            ],
            tool: Some((
                "lookup_invoice",
                "{{\"invoice\":\"{invoice}\",\"status\":\"paid\",\"total\":\"{amount}\",\"seats\":{seats}}}",
            )),
        },
        Intent {
            name: "password_reset",
            openers: &[
                "I can't log in, the password reset email never arrives",
                "how do I reset my password? I'm locked out of {company}'s workspace",
                "Reset link says expired. I tried 3 times.",
            ],
            answers: &[
                "Sorry about that! I've sent a fresh reset link to {email}. It is valid for 30 minutes; please check spam too.",
                "Reset links expire after 30 minutes. I've generated a new one for {email}; use it in the same browser.",
                "Your workspace uses SSO, so the password is managed by {company}'s identity provider. Try 'Sign in with SSO' instead.",
            ],
            follow_ups: &[
                "got it, but now it says my account is locked",
                "I don't have access to that email anymore",
                "it worked, can I turn on two-factor auth too?",
            ],
            replies: &[
                "Accounts lock after 5 failed attempts and unlock after 15 minutes. I've unlocked it now.",
                "For security I can't change the email here; a workspace admin can update it under Members.",
                "Yes: Profile → Security → Two-factor authentication. We support authenticator apps and security keys.",
            ],
            tool: Some(("send_reset_link", "{{\"sent_to\":\"{email}\",\"expires_in_minutes\":30}}")),
        },
        Intent {
            name: "export_data",
            openers: &[
                "How do I export all my projects to {format}?",
                "I need a full export of our workspace data for an audit",
                "export to {format} only gives me 1000 rows, how do I get everything?",
            ],
            answers: &[
                "Go to Settings → Data → Export, choose {format} and 'All projects'. Large exports are emailed to you when ready.",
                "A full workspace export is under Settings → Data → Export workspace. It includes projects, tasks, comments and attachments.",
                "The in-page export is limited to 1,000 rows; the workspace export has no limit and arrives by email within an hour.",
            ],
            follow_ups: &[
                "does the export include attachments?",
                "can I schedule this every week?",
                "what about custom fields?",
            ],
            replies: &[
                "Attachments are included as a separate ZIP with links in the {format} file.",
                "Scheduled exports are available on {plan}: Settings → Data → Scheduled exports.",
                "Custom fields are exported as extra columns, one per field.",
            ],
            tool: Some((
                "start_export",
                "{{\"export_id\":\"exp_{n4}\",\"format\":\"{format}\",\"status\":\"queued\"}}",
            )),
        },
        Intent {
            name: "cancel_subscription",
            openers: &[
                "I want to cancel my subscription",
                "how do I cancel? we're moving to {competitor}",
                "Please cancel our {plan} plan at the end of the month.",
            ],
            answers: &[
                "I'm sorry to see you go. You can cancel under Settings → Billing → Cancel plan; you keep access until the end of the period.",
                "I can help with that. Before you go: would a pause of up to 3 months help instead? Otherwise, cancellation is under Settings → Billing.",
                "Understood. Your {plan} plan will end on {date} and you won't be charged again.",
            ],
            follow_ups: &[
                "will I lose my data?",
                "can I get a refund for this month?",
                "ok, please go ahead and cancel",
            ],
            replies: &[
                "Your data is kept for 90 days after cancellation, so you can export it or come back.",
                "Refunds are prorated for annual plans; monthly plans run until the end of the period.",
                "Done: the plan is cancelled and ends on {date}. A confirmation was sent to {email}.",
            ],
            tool: Some(("cancel_plan", "{{\"plan\":\"{plan}\",\"ends_on\":\"{date}\",\"status\":\"scheduled\"}}")),
        },
        Intent {
            name: "api_rate_limits",
            openers: &[
                "We keep getting {http_error} from the API when syncing, what are the rate limits?",
                "what's the API rate limit on the {plan} plan?",
                "our integration hits the rate limit every morning at 9am, can you raise it?",
            ],
            answers: &[
                "The {plan} plan allows {limit}. A 429 response includes Retry-After; wait that long before retrying.",
                "Limits are per API key: {limit} on {plan}. Batching requests with the bulk endpoint helps a lot.",
                "I can see bursts above {limit} from your key around 9:00. Spreading the sync or using webhooks will avoid the 429s.",
            ],
            follow_ups: &[
                "is the limit per key or per workspace?",
                "can we pay for a higher limit?",
                "do webhooks count against the limit?",
            ],
            replies: &[
                "Per key, so separate integrations can use separate keys.",
                "Enterprise plans have custom limits; I can connect you with sales.",
                "Webhooks are pushed by us and don't count against your limit.",
            ],
            tool: Some(("get_usage", "{{\"key\":\"key_{n4}\",\"requests_last_hour\":{n4},\"limited\":true}}")),
        },
    ],
};

const COACHING: Domain = Domain {
    name: "coaching",
    agent: "mentor-coach",
    model: "claude-sonnet-4-5",
    intents: &[
        Intent {
            name: "career_change",
            openers: &[
                "I've been a {job} for {years} years and I want to move into {target_job}. Where do I start?",
                "Is it too late to switch careers to {target_job} at 38?",
                "I feel stuck as a {job}. Thinking about {target_job} but scared of the pay cut.",
            ],
            answers: &[
                "That's a common and very doable move. Let's start with what transfers: after {years} years as a {job}, which parts of the work do you enjoy most?",
                "It's not too late. Many people move into {target_job} in their late thirties. What draws you to it?",
                "That fear makes sense. Let's look at it concretely: what's the minimum income you need for the next 12 months?",
            ],
            follow_ups: &[
                "I like the problem solving, not so much the meetings",
                "should I do a bootcamp or learn on my own?",
                "how do I explain the switch in interviews?",
                "I could manage with about {amount_k} a year",
            ],
            replies: &[
                "Good signal. {target_job} roles with deep focus time would suit you. Could you talk to two people in that role this month?",
                "A bootcamp gives structure and a network; self-study is cheaper. Given your schedule, a part-time course of {hours} hours a week may fit.",
                "Tell it as a story: what you learned as a {job}, why {target_job} is the next step, and one project that proves it.",
                "Then a gradual move works: keep your job, build one portfolio project over {weeks} weeks, then start applying.",
            ],
            tool: None,
        },
        Intent {
            name: "pricing_my_services",
            openers: &[
                "I'm a freelancer doing {service}. How much should I charge?",
                "I charge {rate} an hour for {service} and clients say it's too expensive",
                "how do I raise my prices without losing my existing clients?",
            ],
            answers: &[
                "Let's work it out from your target income: how many billable hours a week do you realistically have?",
                "Pushback on price often means the value isn't clear. What result does a client get from your {service}?",
                "Give existing clients notice (60 days is common) and explain what they get. Most stay when the increase is modest.",
            ],
            follow_ups: &[
                "maybe {hours} billable hours a day",
                "should I switch to project pricing instead of hourly?",
                "what if they just leave?",
            ],
            replies: &[
                "With {hours} billable hours a day, {rate} an hour gets you there with room for holidays. Don't go lower.",
                "Project pricing rewards you for being fast. Start with one package for your most common {service} job.",
                "Some may, and that frees time for better-paying clients. Keep one or two anchor clients on a grandfathered rate if you need stability.",
            ],
            tool: None,
        },
        Intent {
            name: "time_management",
            openers: &[
                "I never finish my to-do list, I'm always behind",
                "How do I stop procrastinating on big projects?",
                "I work {hours} extra hours every week and still feel behind",
            ],
            answers: &[
                "Let's look at your week. What are the three things that, if done, would make this week a success?",
                "Big projects stall when the next step is vague. What's the smallest next step on yours, something that takes 25 minutes?",
                "That sounds exhausting. Which of your recurring commitments could you drop or delegate?",
            ],
            follow_ups: &[
                "everything feels urgent though",
                "I tried pomodoro, it didn't stick",
                "my manager keeps adding things",
            ],
            replies: &[
                "When everything is urgent, nothing is. Try ranking by consequence: what happens if it slips by a week?",
                "Then try time blocking instead: two 90-minute blocks on {weekday} and Thursday mornings, notifications off.",
                "Bring your list to your manager and ask them to choose what moves. It makes the trade-off visible.",
            ],
            tool: Some(("calendar_lookup", "{{\"week\":\"{date}\",\"meetings\":{seats},\"focus_hours\":{hours}}}")),
        },
        Intent {
            name: "salary_negotiation",
            openers: &[
                "I got an offer for {target_job} at {amount_k}, should I negotiate?",
                "how do I ask for a raise? I haven't had one in {years} years",
            ],
            answers: &[
                "Almost always yes. What's the market range for {target_job} in your city, and what's your walk-away number?",
                "Let's prepare the case: list three results you delivered this year, with numbers where you can.",
            ],
            follow_ups: &["what if they withdraw the offer?", "what should I say exactly?", "I'm nervous about it"],
            replies: &[
                "A polite, well-researched counter almost never costs an offer. Worst case they say the budget is fixed.",
                "Try: 'I'm excited about the role. Based on my research and experience, I was expecting closer to {amount_k}. Is there flexibility?'",
                "That's normal. Practice it out loud twice; it gets much easier.",
            ],
            tool: None,
        },
    ],
};

const SALES: Domain = Domain {
    name: "sales",
    agent: "nimbus-sales",
    model: "claude-haiku-4-5",
    intents: &[
        Intent {
            name: "pricing_plans",
            openers: &[
                "What's the difference between {plan} and Business?",
                "how much would it cost for a team of {seats}?",
                "Do you have a nonprofit discount?",
            ],
            answers: &[
                "{plan} covers projects, tasks and integrations; Business adds {feature}, advanced permissions and priority support.",
                "For {seats} users, {plan} is {amount} a month billed annually. Want me to break that down?",
                "Yes: registered nonprofits get 50% off any paid plan. You can apply with your registration number.",
            ],
            follow_ups: &["is there a free trial?", "can we pay monthly?", "does {plan} include {feature}?"],
            replies: &[
                "Yes, 14 days of Business, no card needed.",
                "Monthly billing is available on every plan; annual saves about 17%.",
                "{feature} is included from Business up. On {plan} you can add it for a small fee.",
            ],
            tool: Some(("get_quote", "{{\"plan\":\"{plan}\",\"seats\":{seats},\"monthly_total\":\"{amount}\"}}")),
        },
        Intent {
            name: "demo_booking",
            openers: &[
                "Can I book a demo for my team?",
                "I'd like to see the product with someone, we're {seats} people at {company}",
            ],
            answers: &[
                "Happy to set that up. Does {weekday} at {time} work for you?",
                "Great! I have slots on {weekday} at {time} or Thursday at 10am. Which suits {company} better?",
            ],
            follow_ups: &["{weekday} works, can you invite {email}?", "can we do something later in the day?"],
            replies: &[
                "Booked for {weekday} at {time}; the invite is on its way to {email}.",
                "Sure, I can offer {weekday} at 4pm. Shall I book it?",
            ],
            tool: Some((
                "book_meeting",
                "{{\"slot\":\"{weekday} {time}\",\"attendee\":\"{email}\",\"status\":\"confirmed\"}}",
            )),
        },
        Intent {
            name: "competitor_comparison",
            openers: &["How are you different from {competitor}?", "we use {competitor} today, why would we switch?"],
            answers: &[
                "Compared with {competitor}, teams mention three things: built-in {feature}, simpler permissions, and flat pricing per seat.",
                "Most teams switching from {competitor} come for {feature} and stay for the reporting. We also import your {competitor} projects in one click.",
            ],
            follow_ups: &[
                "is the import really complete? comments, attachments?",
                "what about integrations with Slack and GitHub?",
            ],
            replies: &[
                "Projects, tasks, comments and attachments come over; automations have to be recreated.",
                "Both are supported natively, along with 60 other integrations.",
            ],
            tool: None,
        },
        Intent {
            name: "enterprise_security",
            openers: &[
                "Are you {cert} compliant?",
                "Our security team needs your {cert} report and a DPA before we can buy.",
                "Do you support SSO with Okta and SCIM provisioning?",
            ],
            answers: &[
                "Yes, we hold {cert}. I can share the report under NDA through our trust portal.",
                "Of course. The DPA is available to sign online and the {cert} report is in our trust portal after a short NDA.",
                "Yes: SAML SSO with Okta, Azure AD and Google, and SCIM provisioning are included in Enterprise.",
            ],
            follow_ups: &[
                "where is the data hosted?",
                "do you offer data residency in the EU?",
                "can we get a security questionnaire filled?",
            ],
            replies: &[
                "Data is hosted on AWS in the US by default, encrypted at rest and in transit.",
                "Yes, Enterprise customers can choose EU hosting in Frankfurt.",
                "Yes, our security team completes questionnaires within five business days.",
            ],
            tool: None,
        },
    ],
};

const DOMAINS: [&Domain; 3] = [&SUPPORT, &COACHING, &SALES];

const GREETINGS: &[&str] =
    &["", "", "", "", "Hi, ", "Hello! ", "hey ", "Hi there. ", "Good morning, ", "Quick question: "];
const SIGN_OFFS: &[&str] =
    &["", "", "", "", " Thanks!", " thx", " Any ideas?", " 🙏", " Thanks in advance.", " (asking for my team)"];
const CLOSERS: &[&str] = &[
    "thanks, that worked!",
    "Perfect, thank you.",
    "great, that's all I needed",
    "thanks a lot 🙏",
    "ok thanks",
    "Super helpful, appreciate it.",
];
const CLOSER_REPLIES: &[&str] = &[
    "You're welcome! Anything else I can help with?",
    "Glad I could help. Have a great day!",
    "Happy to help. Good luck!",
];
const FRUSTRATION: &[&str] = &[
    "this is useless",
    "I already told you. {repeat}",
    "WHY IS THIS SO COMPLICATED",
    "that's not what I asked!!!",
    "seriously? this is the third time I'm asking",
    "you're not helping at all",
    "ugh. this bot is useless",
    "NO. Read my question again!!!",
];
const REPEAT_PREFIXES: &[&str] = &["", "", "I'll ask again: ", "again: ", "Let me repeat: "];
const REFUSALS: &[&str] = &[
    "I'm sorry, I can't help with that.",
    "I'm sorry, but I'm not able to access that information.",
    "Unfortunately I can't make changes to your account from here.",
    "I'm afraid that's outside what I can help with.",
];
const ESCALATIONS: &[&str] = &[
    "can I talk to a human?",
    "I want to speak to a real person",
    "Is there an actual human I can talk to??",
    "please connect me with support staff",
    "get me a human agent",
];
const HANDOFFS: &[&str] = &[
    "I understand. I've created ticket #{n4} and a member of our team will reach out within 24 hours.",
    "Of course. I'm transferring you to a human agent now; the average wait is about {hours} minutes.",
];
const TOOL_ERRORS: &[&str] = &["timeout", "upstream 500", "rate_limited", "connection reset"];
const TOOL_ERROR_REPLIES: &[&str] = &[
    "Sorry, I couldn't reach our systems just now. Could you try again in a few minutes?",
    "Something went wrong on my side while looking that up. Please try again later.",
];
const ERROR_REPLIES: &[&str] = &["", "", "An error occurred. Please try again.", "[error: model overloaded]"];

fn slot(rng: &mut StdRng, name: &str) -> String {
    fn one(rng: &mut StdRng, list: &[&str]) -> String {
        list[rng.random_range(0..list.len())].to_owned()
    }
    match name {
        "amount" => format!("${}.{:02}", rng.random_range(9..1200), [0, 0, 99, 50][rng.random_range(0..4)]),
        "amount_k" => format!("${}k", rng.random_range(45..180)),
        "date" => format!(
            "{} {}",
            one(
                rng,
                &[
                    "January",
                    "February",
                    "March",
                    "April",
                    "May",
                    "June",
                    "July",
                    "August",
                    "September",
                    "October",
                    "November",
                    "December"
                ]
            ),
            rng.random_range(1..29)
        ),
        "invoice" => format!("INV-{}", rng.random_range(10_000..99_999)),
        "n4" => rng.random_range(1000..9999).to_string(),
        "seats" => one(rng, &["3", "5", "8", "12", "25", "40", "75", "120", "300"]),
        "years" => rng.random_range(2..16).to_string(),
        "hours" => rng.random_range(2..7).to_string(),
        "weeks" => rng.random_range(4..13).to_string(),
        "plan" => one(rng, &["Starter", "Pro", "Team", "Business"]),
        "format" => one(rng, &["CSV", "JSON", "Excel"]),
        "feature" => {
            one(rng, &["Gantt charts", "time tracking", "SSO", "custom fields", "automations", "portfolio views"])
        }
        "competitor" => one(rng, &["Asana", "Trello", "Monday.com", "ClickUp", "Jira", "Notion"]),
        "company" => {
            one(rng, &["Acme", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Foods", "Hooli"])
        }
        "email" => format!(
            "{}@{}.com",
            one(rng, &["anna", "ben", "carla", "dev", "eli", "fatima", "gus", "hana", "ivan", "jo"]),
            one(rng, &["acme", "globex", "initech", "hooli", "example"])
        ),
        "job" => one(
            rng,
            &[
                "teacher",
                "nurse",
                "accountant",
                "marketing lead",
                "project manager",
                "sales rep",
                "barista",
                "civil engineer",
            ],
        ),
        "target_job" => one(
            rng,
            &["UX designer", "data analyst", "product manager", "software engineer", "therapist", "technical writer"],
        ),
        "service" => one(
            rng,
            &[
                "logo design",
                "bookkeeping",
                "fitness coaching",
                "copywriting",
                "web development",
                "wedding photography",
            ],
        ),
        "rate" => one(rng, &["$35", "$60", "$85", "$120", "$150"]),
        "limit" => one(rng, &["100 requests per minute", "600 requests per minute", "1,000 requests per minute"]),
        "http_error" => one(rng, &["429s", "429 Too Many Requests", "503 errors"]),
        "weekday" => one(rng, &["Monday", "Tuesday", "Wednesday", "Friday"]),
        "time" => one(rng, &["9am", "10:30am", "1pm", "3pm"]),
        "cert" => one(rng, &["SOC 2 Type II", "ISO 27001", "HIPAA", "GDPR"]),
        _ => String::new(),
    }
}

/// Fills `{slot}`s (and `{{`/`}}` escapes) in `template`. A slot keeps its first value within a conversation.
fn fill(rng: &mut StdRng, slots: &mut Vec<(String, String)>, template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        match (tail.starts_with('{'), tail.find('}')) {
            (true, Some(end)) => {
                let name = &tail[1..end];
                let value = match slots.iter().find(|(n, _)| n == name) {
                    Some((_, v)) => v.clone(),
                    None => {
                        let v = slot(rng, name);
                        slots.push((name.to_owned(), v.clone()));
                        v
                    }
                };
                out.push_str(&value);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A template picked from `list`, filled.
fn say(rng: &mut StdRng, slots: &mut Vec<(String, String)>, list: &[&str]) -> String {
    let template = pick(rng, list);
    fill(rng, slots, template)
}

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

// ---------------------------------------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------------------------------------

/// SplitMix64: spreads (seed, index, stream) over independent generator seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn stream(seed: u64, index: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(mix(mix(seed ^ mix(index)) ^ stream.wrapping_mul(0xA076_1D64_78BD_642F)))
}

/// What happens in one agent turn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AgentTurn {
    Good,
    Slow,
    Refusal,
    ToolError,
    Loop,
    Empty,
}

/// A message before timestamps are assigned: role, content, metadata, and the gap before it in milliseconds.
struct Draft {
    role: &'static str,
    content: String,
    metadata: Map<String, Value>,
    gap_ms: i64,
}

fn conversation(seed: u64, index: u64, now: OffsetDateTime) -> DemoConversation {
    let mut rng = stream(seed, index, 0);
    let id = format!("demo-{seed}-{index:06}");
    let domain = DOMAINS[pick_weighted(&mut rng, &[45, 25, 30])];
    let intent = &domain.intents[rng.random_range(0..domain.intents.len())];
    let environment = if rng.random_bool(0.1) { "staging" } else { "production" };
    let user_id = rng.random_bool(0.85).then(|| format!("user_{:05}", rng.random_range(0..5000)));
    let channel = ["web", "web", "web", "mobile", "slack", "email"][rng.random_range(0..6)];
    let plan = ["free", "starter", "pro", "pro", "business", "enterprise"][rng.random_range(0..6)];
    let mut metadata = Map::new();
    metadata.insert("domain".into(), json!(domain.name));
    metadata.insert("intent".into(), json!(intent.name));
    metadata.insert("channel".into(), json!(channel));
    metadata.insert("plan".into(), json!(plan));

    // A quarter of conversations go badly; the rest fail rarely.
    let troubled = rng.random_bool(0.27);
    let fail_rate = if troubled { 0.45 } else { 0.03 };
    // User turns: mostly 2–6, sometimes long.
    let turns = if rng.random_bool(0.17) { rng.random_range(7..=15) } else { rng.random_range(1..=6) };

    let mut slots: Vec<(String, String)> = Vec::new();
    let mut drafts: Vec<Draft> = Vec::new();
    let mut failures: Vec<FailureKind> = Vec::new();
    let mut user_lines: Vec<String> = Vec::new();
    let mut last_reply: Option<String> = None;
    let mut last_failed = false;
    let mut tokens_in: i64 = rng.random_range(600..1400);

    for turn in 0..turns {
        if drafts.len() + 2 > MAX_MESSAGES {
            break;
        }
        // The user's message.
        let user = if turn == 0 {
            if rng.random_bool(0.02) {
                note(&mut failures, FailureKind::Escalation);
                pick(&mut rng, ESCALATIONS).to_owned()
            } else {
                let opener = say(&mut rng, &mut slots, intent.openers);
                let greeting = pick(&mut rng, GREETINGS);
                let greeting = if opener.starts_with("Hi") || opener.starts_with("Hello") { "" } else { greeting };
                format!("{greeting}{opener}{}", pick(&mut rng, SIGN_OFFS))
            }
        } else if last_failed {
            match pick_weighted(&mut rng, &[22, 35, 25, 18]) {
                0 => {
                    note(&mut failures, FailureKind::Abandonment);
                    break;
                }
                1 => {
                    note(&mut failures, FailureKind::Frustration);
                    let line = pick(&mut rng, FRUSTRATION);
                    let first = user_lines.first().map(String::as_str).unwrap_or_default();
                    line.replace("{repeat}", first)
                }
                2 => {
                    note(&mut failures, FailureKind::RepeatedQuestion);
                    let earlier = user_lines.last().cloned().unwrap_or_default();
                    format!("{}{earlier}", pick(&mut rng, REPEAT_PREFIXES))
                }
                _ => {
                    note(&mut failures, FailureKind::Escalation);
                    pick(&mut rng, ESCALATIONS).to_owned()
                }
            }
        } else if turn + 1 == turns && turns > 1 && rng.random_bool(0.7) {
            pick(&mut rng, CLOSERS).to_owned()
        } else {
            say(&mut rng, &mut slots, intent.follow_ups)
        };
        let think_ms = if turn == 0 { 0 } else { think_time(&mut rng) };
        tokens_in += (user.len() / 4) as i64 + 1;
        user_lines.push(user.clone());
        let escalating = ESCALATIONS.contains(&user.as_str());
        let closing = CLOSERS.contains(&user.as_str());
        drafts.push(Draft { role: "user", content: user, metadata: Map::new(), gap_ms: think_ms });

        // The agent's turn.
        let kind = if escalating || closing {
            AgentTurn::Good
        } else if rng.random_bool(fail_rate) {
            match pick_weighted(&mut rng, &[18, 26, 22, 16, 18]) {
                0 => AgentTurn::Slow,
                1 => AgentTurn::Refusal,
                2 if intent.tool.is_some() => AgentTurn::ToolError,
                2 => AgentTurn::Refusal,
                3 if last_reply.is_some() => AgentTurn::Loop,
                3 => AgentTurn::Empty,
                _ => AgentTurn::Empty,
            }
        } else if rng.random_bool(0.02) {
            AgentTurn::Slow
        } else {
            AgentTurn::Good
        };
        let mut reply_meta = Map::new();
        let mut gap_ms = rng.random_range(700..6000);
        // Tool calls: on the first turn of intents with a tool, sometimes later.
        let mut tool_failed = false;
        if let Some((tool, result)) = intent.tool
            && !escalating
            && !closing
            && (turn == 0 || rng.random_bool(0.25) || kind == AgentTurn::ToolError)
            && drafts.len() + 2 < MAX_MESSAGES
        {
            let mut meta = Map::new();
            meta.insert("tool".into(), json!(tool));
            let call_ms = rng.random_range(300..2500);
            if kind == AgentTurn::ToolError && rng.random_bool(0.7) {
                let error = pick(&mut rng, TOOL_ERRORS);
                meta.insert("error".into(), json!(error));
                let content = format!("error: {tool} failed: {error}");
                drafts.push(Draft { role: "tool", content, metadata: meta, gap_ms: call_ms + 10_000 });
                tool_failed = true;
            } else if kind != AgentTurn::ToolError {
                meta.insert("duration_ms".into(), json!(call_ms));
                let content = fill(&mut rng, &mut slots, result);
                drafts.push(Draft { role: "tool", content, metadata: meta, gap_ms: call_ms });
            }
        }
        if kind == AgentTurn::ToolError && !tool_failed {
            let tool = intent.tool.map_or("lookup", |(name, _)| name);
            reply_meta.insert("tool_error".into(), json!({"tool": tool, "error": pick(&mut rng, TOOL_ERRORS)}));
        }
        let reply = match kind {
            AgentTurn::Good | AgentTurn::Slow => {
                if escalating {
                    say(&mut rng, &mut slots, HANDOFFS)
                } else if closing {
                    pick(&mut rng, CLOSER_REPLIES).to_owned()
                } else if turn == 0 || last_failed {
                    say(&mut rng, &mut slots, intent.answers)
                } else {
                    say(&mut rng, &mut slots, intent.replies)
                }
            }
            AgentTurn::Refusal => {
                note(&mut failures, FailureKind::Refusal);
                pick(&mut rng, REFUSALS).to_owned()
            }
            AgentTurn::ToolError => {
                note(&mut failures, FailureKind::ToolError);
                pick(&mut rng, TOOL_ERROR_REPLIES).to_owned()
            }
            AgentTurn::Loop => {
                note(&mut failures, FailureKind::RepetitionLoop);
                last_reply.clone().unwrap_or_default()
            }
            AgentTurn::Empty => {
                note(&mut failures, FailureKind::EmptyReply);
                reply_meta.insert(
                    "error".into(),
                    json!(pick(&mut rng, &["model_overloaded", "upstream_timeout", "content_filter"])),
                );
                reply_meta.insert("finish_reason".into(), json!("error"));
                pick(&mut rng, ERROR_REPLIES).to_owned()
            }
        };
        if kind == AgentTurn::Slow {
            note(&mut failures, FailureKind::SlowTurn);
            gap_ms = rng.random_range(12_000..45_000);
        }
        let output_tokens = (reply.len() / 4) as i64 + rng.random_range(1..20);
        let mut meta = Map::new();
        meta.insert("model".into(), json!(domain.model));
        meta.insert("latency_ms".into(), json!(gap_ms));
        meta.insert("input_tokens".into(), json!(tokens_in));
        meta.insert("output_tokens".into(), json!(output_tokens));
        meta.append(&mut reply_meta);
        tokens_in += output_tokens;
        drafts.push(Draft { role: "assistant", content: reply.clone(), metadata: meta, gap_ms });
        last_failed = !matches!(kind, AgentTurn::Good | AgentTurn::Slow);
        last_reply = Some(reply);
        if escalating && rng.random_bool(0.6) {
            break; // handed off to a human
        }
    }
    // Ending on a failed reply: the user left right after it.
    if last_failed && drafts.last().is_some_and(|d| d.role == "assistant") {
        note(&mut failures, FailureKind::Abandonment);
    }

    let times = timestamps(&mut stream(seed, index, 1), now, &drafts);
    let messages = drafts
        .into_iter()
        .zip(times)
        .enumerate()
        .map(|(n, (d, at))| DemoMessage {
            id: format!("m_{id}_{n}"),
            role: d.role,
            content: d.content,
            at,
            metadata: d.metadata,
        })
        .collect();
    DemoConversation {
        id,
        environment: environment.to_owned(),
        user_id,
        agent_id: domain.agent.to_owned(),
        metadata,
        messages,
        failures,
    }
}

/// Records a failure once.
fn note(failures: &mut Vec<FailureKind>, kind: FailureKind) {
    if !failures.contains(&kind) {
        failures.push(kind);
    }
}

fn pick_weighted(rng: &mut StdRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    0
}

/// How long a user takes to answer: usually seconds, sometimes minutes.
fn think_time(rng: &mut StdRng) -> i64 {
    if rng.random_bool(0.1) { rng.random_range(60_000..600_000) } else { rng.random_range(4_000..90_000) }
}

/// Relative weight of a start time: weekdays busier than weekends, working hours busier than nights (UTC).
fn weight(t: OffsetDateTime) -> f64 {
    let day = match t.weekday() {
        Weekday::Saturday | Weekday::Sunday => 0.45,
        Weekday::Friday => 0.85,
        _ => 1.0,
    };
    let hour = match t.hour() {
        0..=5 => 0.12,
        6..=7 => 0.35,
        8..=11 => 1.0,
        12..=13 => 0.8,
        14..=17 => 0.95,
        18..=20 => 0.55,
        _ => 0.3,
    };
    day * hour
}

/// Timestamps for the drafts: a start drawn with the daily and weekly rhythm, then each draft's gap. Uses its
/// own random stream, so `now` never changes the content.
fn timestamps(rng: &mut StdRng, now: OffsetDateTime, drafts: &[Draft]) -> Vec<OffsetDateTime> {
    let earliest = now - Duration::days(SPREAD_DAYS);
    let span_ms = SPREAD_DAYS * 86_400_000;
    let mut start = earliest;
    for _ in 0..64 {
        let candidate = earliest + Duration::milliseconds(rng.random_range(0..span_ms));
        start = candidate;
        if rng.random_bool(weight(candidate).clamp(0.0, 1.0)) {
            break;
        }
    }
    // Millisecond precision.
    let start = start.replace_nanosecond(start.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(start);
    let mut out = Vec::with_capacity(drafts.len());
    let mut at = start;
    for (i, d) in drafts.iter().enumerate() {
        if i > 0 {
            at += Duration::milliseconds(d.gap_ms.max(1));
        }
        out.push(at);
    }
    // A conversation that would run past `now` is moved back (it stays after `earliest`: it is short).
    if let Some(last) = out.last().copied()
        && last > now
    {
        let shift = last - now + Duration::seconds(1);
        for t in &mut out {
            *t -= shift;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeSet;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-29 12:34:56.789 UTC)
    }

    #[test]
    fn the_same_seed_gives_the_same_conversations_and_now_only_moves_timestamps() {
        let a: Vec<_> = generate(7, 200, now()).collect();
        let b: Vec<_> = generate(7, 200, now()).collect();
        assert_eq!(a, b);
        let c: Vec<_> = generate(8, 200, now()).collect();
        assert_ne!(a, c);
        // A prefix is the same whatever the count, and a later `now` changes only the times.
        let prefix: Vec<_> = generate(7, 50, now()).collect();
        assert_eq!(&a[..50], &prefix[..]);
        let later: Vec<_> = generate(7, 200, now() + Duration::days(3)).collect();
        for (x, y) in a.iter().zip(&later) {
            assert_eq!((&x.id, &x.metadata, x.messages.len()), (&y.id, &y.metadata, y.messages.len()));
            for (m, n) in x.messages.iter().zip(&y.messages) {
                assert_eq!((&m.id, &m.content, m.role, &m.metadata), (&n.id, &n.content, n.role, &n.metadata));
            }
        }
    }

    #[test]
    fn conversations_average_about_ten_messages_within_bounds() {
        let convs: Vec<_> = generate(1, 5000, now()).collect();
        let total: usize = convs.iter().map(|c| c.messages.len()).sum();
        let avg = total as f64 / convs.len() as f64;
        assert!((9.0..=11.0).contains(&avg), "average {avg}");
        for c in &convs {
            assert!((MIN_MESSAGES..=MAX_MESSAGES).contains(&c.messages.len()), "{} has {}", c.id, c.messages.len());
        }
        let ids: BTreeSet<_> = convs.iter().map(|c| (&c.environment, &c.id)).collect();
        assert_eq!(ids.len(), convs.len());
        let staging = convs.iter().filter(|c| c.environment == "staging").count() as f64 / convs.len() as f64;
        assert!((0.07..=0.13).contains(&staging), "staging share {staging}");
    }

    #[test]
    fn every_failure_kind_appears_in_a_thousand_conversations_with_visible_evidence() {
        let convs: Vec<_> = generate(42, 1000, now()).collect();
        for kind in FailureKind::ALL {
            let n = convs.iter().filter(|c| c.failures.contains(&kind)).count();
            assert!(n >= 10, "{} appears in {n} conversations", kind.as_str());
        }
        let happy = convs.iter().filter(|c| c.failures.is_empty()).count();
        assert!((550..=850).contains(&happy), "{happy} happy paths of 1000");
        for c in &convs {
            let msgs = &c.messages;
            let has = |k| c.failures.contains(&k);
            if has(FailureKind::ToolError) {
                assert!(
                    msgs.iter().any(|m| m.metadata.contains_key("tool_error")
                        || (m.role == "tool" && m.metadata.contains_key("error"))),
                    "{}",
                    c.id
                );
            }
            if has(FailureKind::SlowTurn) {
                assert!(msgs.iter().any(|m| m.metadata.get("latency_ms").and_then(Value::as_i64) >= Some(12_000)));
            }
            if has(FailureKind::RepetitionLoop) {
                let replies: Vec<_> = msgs.iter().filter(|m| m.role == "assistant").map(|m| &m.content).collect();
                assert!(replies.windows(2).any(|w| w[0] == w[1]), "{}", c.id);
            }
            if has(FailureKind::Abandonment) {
                assert_eq!(msgs.last().map(|m| m.role), Some("assistant"), "{}", c.id);
            }
            if has(FailureKind::RepeatedQuestion) {
                let users: Vec<_> = msgs.iter().filter(|m| m.role == "user").map(|m| &m.content).collect();
                assert!(
                    users
                        .iter()
                        .enumerate()
                        .any(|(i, u)| users[..i].iter().any(|e| !e.is_empty() && u.ends_with(e.as_str())))
                );
            }
        }
    }

    #[test]
    fn messages_are_valid_for_the_track_api() {
        let earliest = now() - Duration::days(SPREAD_DAYS);
        for c in generate(3, 1000, now()) {
            assert!(["production", "staging"].contains(&c.environment.as_str()));
            for key in ["domain", "intent", "channel", "plan"] {
                assert!(c.metadata.get(key).and_then(Value::as_str).is_some(), "{} lacks {key}", c.id);
            }
            assert_eq!(c.messages.first().map(|m| m.role), Some("user"));
            for (n, m) in c.messages.iter().enumerate() {
                assert_eq!(m.id, format!("m_{}_{n}", c.id));
                assert!(["user", "assistant", "tool"].contains(&m.role));
                assert!(m.content.len() <= 64 * 1024);
                assert!(!m.content.contains('{') || m.role == "tool", "unfilled slot: {}", m.content);
                assert!(m.at >= earliest && m.at <= now(), "{} at {}", m.id, m.at);
                if m.role == "assistant" {
                    assert!(m.metadata.contains_key("model") && m.metadata.contains_key("output_tokens"));
                }
            }
            for w in c.messages.windows(2) {
                assert!(w[0].at < w[1].at, "{} not increasing", w[1].id);
            }
        }
    }

    #[test]
    fn text_is_varied() {
        let distinct: BTreeSet<String> =
            generate(5, 2000, now()).filter_map(|c| c.messages.first().map(|m| m.content.clone())).collect();
        assert!(distinct.len() > 1000, "only {} distinct openers", distinct.len());
    }
}
