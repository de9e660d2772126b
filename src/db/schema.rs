// Written to match migrations/postgres and migrations/sqlite (both tell the
// same story); `diesel print-schema` against either gives these tables.

diesel::table! {
    app_state (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    subscribers (id) {
        id -> Text,
        email -> Nullable<Text>,
        email_key -> Nullable<Text>,
        name -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        last_confirmation_at -> Nullable<Timestamp>,
        paused_until -> Nullable<Timestamp>,
        frequency -> Text,
        frequency_at -> Nullable<Timestamp>,
        choice_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    confirmation_tokens (token_hash) {
        token_hash -> Text,
        subscriber_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        new_email -> Nullable<Text>,
    }
}

diesel::table! {
    consent_events (id) {
        id -> BigInt,
        subscriber_id -> Text,
        event -> Text,
        occurred_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        source -> Nullable<Text>,
        consent_text_version -> Nullable<Text>,
        method -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        subscriber_id -> Nullable<Text>,
        recipient -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    digests (id) {
        id -> BigInt,
        status -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        article_count -> Integer,
        total -> Integer,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        status_reason -> Nullable<Text>,
        audience_at -> Nullable<Timestamp>,
        cut_from -> Nullable<Text>,
        intro -> Nullable<Text>,
        custom_subject -> Nullable<Text>,
        scheduled_at -> Nullable<Timestamp>,
        weekly_before -> Nullable<Timestamp>,
    }
}

diesel::table! {
    section_choices (id) {
        id -> BigInt,
        sections -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    digest_editions (digest_id, choice_id) {
        digest_id -> BigInt,
        choice_id -> BigInt,
        subject -> Nullable<Text>,
        body_text -> Nullable<Text>,
        body_html -> Nullable<Text>,
    }
}

diesel::table! {
    articles (id) {
        id -> BigInt,
        url -> Text,
        guid -> Nullable<Text>,
        title -> Text,
        summary -> Nullable<Text>,
        published_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        digest_id -> Nullable<BigInt>,
        image_url -> Nullable<Text>,
        author -> Nullable<Text>,
        sections -> Nullable<Text>,
        dated -> Bool,
        digest_position -> Integer,
    }
}

diesel::table! {
    deliveries (digest_id, subscriber_id) {
        digest_id -> BigInt,
        subscriber_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    delivery_chunks (id) {
        id -> BigInt,
        digest_id -> BigInt,
        first_subscriber -> Text,
        next_subscriber -> Nullable<Text>,
        size -> Integer,
        sent -> Integer,
        failed -> Integer,
        skipped -> Integer,
        done -> Bool,
        due_at -> Timestamp,
        lease_id -> Nullable<Text>,
        cursor -> Nullable<Text>,
        passed -> Bool,
        settled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    job_runs (job, tick) {
        job -> Text,
        tick -> Text,
        started_at -> Timestamp,
    }
}

diesel::table! {
    feed_state (feed_url) {
        feed_url -> Text,
        etag -> Nullable<Text>,
        last_modified -> Nullable<Text>,
        last_polled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    consent_texts (version) {
        version -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    admins (id) {
        id -> BigInt,
        name -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    admin_sessions (id_hash) {
        id_hash -> Text,
        admin_id -> BigInt,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    suppressions (email_hash) {
        email_hash -> Text,
        reason -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    bounces (id) {
        id -> BigInt,
        subscriber_id -> Text,
        digest_id -> Nullable<BigInt>,
        kind -> Text,
        status_code -> Nullable<Text>,
        diagnostic -> Nullable<Text>,
        source -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    feedback_votes (id) {
        id -> BigInt,
        url -> Text,
        source -> Text,
        voter -> Text,
        vote -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(confirmation_tokens -> subscribers (subscriber_id));
diesel::joinable!(consent_events -> subscribers (subscriber_id));
diesel::joinable!(deliveries -> subscribers (subscriber_id));
diesel::joinable!(deliveries -> digests (digest_id));
diesel::joinable!(delivery_chunks -> digests (digest_id));
diesel::joinable!(articles -> digests (digest_id));
diesel::joinable!(admin_sessions -> admins (admin_id));
diesel::joinable!(digest_editions -> digests (digest_id));

diesel::allow_tables_to_appear_in_same_query!(
    app_state,
    subscribers,
    confirmation_tokens,
    consent_events,
    consent_texts,
    outbox,
    api_tokens,
    digests,
    articles,
    deliveries,
    delivery_chunks,
    job_runs,
    feed_state,
    admins,
    admin_sessions,
    suppressions,
    bounces,
    feedback_votes,
    section_choices,
    digest_editions,
);
