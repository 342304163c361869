-- jianlian store, SQLite. Money is BIGINT fen, time BIGINT epoch milliseconds
-- (UTC), the same row types as the PostgreSQL schema.

CREATE TABLE channels (
    app_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    pid           TEXT NOT NULL,
    parent_app_id TEXT REFERENCES channels (app_id),
    public_key    TEXT NOT NULL,
    notify_hosts  TEXT NOT NULL,            -- JSON array of host patterns
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE merchants (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_app_id       TEXT NOT NULL REFERENCES channels (app_id),
    external_id          TEXT NOT NULL,
    business_license     TEXT,
    name                 TEXT NOT NULL,
    profile              TEXT NOT NULL,     -- JSON MerchantProfile, every field
    source               TEXT NOT NULL,
    smid                 TEXT,
    state                TEXT NOT NULL,
    rejection            TEXT,
    fee_rate_ppm         BIGINT NOT NULL,
    credit_fee_rate_ppm  BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    version              BIGINT NOT NULL,
    -- R2.2: one real merchant, one onboarding; one smid, one merchant.
    CONSTRAINT merchants_external_id_unique UNIQUE (channel_app_id, external_id),
    CONSTRAINT merchants_business_license_unique UNIQUE (business_license),
    CONSTRAINT merchants_smid_unique UNIQUE (smid)
);
CREATE INDEX merchants_name ON merchants (name);

CREATE TABLE merchant_source_changes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id  BIGINT NOT NULL REFERENCES merchants (id),
    from_source  TEXT NOT NULL,
    to_source    TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX merchant_source_changes_merchant ON merchant_source_changes (merchant_id);

CREATE TABLE stores (
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, code)
);

CREATE TABLE terminals (
    merchant_id BIGINT NOT NULL,
    store_code  TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id),
    FOREIGN KEY (merchant_id, store_code) REFERENCES stores (merchant_id, code)
);

CREATE TABLE trades (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                  TEXT NOT NULL,
    channel_app_id        TEXT NOT NULL REFERENCES channels (app_id),
    merchant_id           BIGINT NOT NULL REFERENCES merchants (id),
    smid                  TEXT NOT NULL,
    store_code            TEXT NOT NULL,
    terminal_id           TEXT NOT NULL,
    channel_out_trade_no  TEXT NOT NULL,
    -- Set in the transaction that inserts the row (it is derived from the id).
    upstream_out_trade_no TEXT,
    subject               TEXT NOT NULL,
    total_amount          BIGINT NOT NULL,
    notify_url            TEXT,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    state                 TEXT NOT NULL,
    cancel_action         TEXT,
    state_since           BIGINT NOT NULL,
    flags                 BIGINT NOT NULL,
    trade_no              TEXT,
    buyer_user_id         TEXT,
    buyer_logon_id        TEXT,
    receipt_amount        BIGINT,
    buyer_pay_amount      BIGINT,
    paid_at               BIGINT,
    fund_bills            TEXT NOT NULL,    -- JSON array
    failure               TEXT,             -- JSON FailureReason
    unknown_reason        TEXT,
    progress              TEXT NOT NULL,    -- JSON Progress
    fee                   TEXT,             -- JSON PaymentFee
    fee_amount            BIGINT,
    version               BIGINT NOT NULL,
    -- Idempotency: a channel's order number names one trade; ours are unique upstream.
    CONSTRAINT trades_channel_order_unique UNIQUE (channel_app_id, channel_out_trade_no),
    CONSTRAINT trades_upstream_order_unique UNIQUE (upstream_out_trade_no)
);
CREATE INDEX trades_state ON trades (state, expires_at);
CREATE INDEX trades_merchant ON trades (merchant_id, created_at);

CREATE TABLE refunds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    trade_id       BIGINT NOT NULL REFERENCES trades (id),
    out_request_no TEXT NOT NULL,
    amount         BIGINT NOT NULL,
    reason         TEXT,
    state          TEXT NOT NULL,
    requested_at   BIGINT NOT NULL,
    state_since    BIGINT NOT NULL,
    failure        TEXT,
    share          TEXT,                    -- JSON RefundShare once succeeded
    refunded_at    BIGINT,
    version        BIGINT NOT NULL,
    CONSTRAINT refunds_request_unique UNIQUE (trade_id, out_request_no)
);

CREATE TABLE journals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    journal_key TEXT NOT NULL,
    kind        TEXT NOT NULL,
    trade_id    BIGINT NOT NULL REFERENCES trades (id),
    refund_id   BIGINT REFERENCES refunds (id),
    at          BIGINT NOT NULL,
    -- The same event is never booked twice.
    CONSTRAINT journals_key_unique UNIQUE (journal_key)
);

CREATE TABLE journal_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    journal_id BIGINT NOT NULL REFERENCES journals (id),
    account    TEXT NOT NULL,
    side       TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0)
);
CREATE INDEX journal_entries_journal ON journal_entries (journal_id);
CREATE INDEX journal_entries_account ON journal_entries (account);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    trade_id        BIGINT NOT NULL REFERENCES trades (id),
    channel_app_id  TEXT NOT NULL,
    trade_status    TEXT NOT NULL,
    notify_url      TEXT NOT NULL,
    fields          TEXT NOT NULL,          -- JSON array of [name, value]
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    generation      BIGINT NOT NULL,        -- bumped by each replay
    -- One notification per status a trade reaches.
    CONSTRAINT outbox_trade_status_unique UNIQUE (trade_id, trade_status)
);
CREATE INDEX outbox_status ON outbox (status, next_attempt_at);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    dedupe_key   TEXT NOT NULL,
    payload      TEXT NOT NULL,             -- JSON
    state        TEXT NOT NULL,             -- queued, done, dead
    run_at       BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    locked_by    TEXT,
    locked_until BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT jobs_dedupe_unique UNIQUE (dedupe_key)
);
CREATE INDEX jobs_due ON jobs (state, run_at);
