-- Each run carries its metric summaries as one JSON text, as on SQLite, kept in step with
-- metric_summaries by statement-level triggers (one refresh per statement and run, however many
-- keys it wrote), so that listing 10k runs with their summaries copies text instead of
-- aggregating and formatting 50k JSON arrays at read time.
-- Element: [key, goal, count, nan_count, last, last_step, min, max, best, best_step], by key.
-- PostgreSQL's JSON keeps every double exactly and writes infinities as "Infinity"/"-Infinity".
ALTER TABLE runs ADD COLUMN summaries_json TEXT NOT NULL DEFAULT '[]';

CREATE FUNCTION refresh_summaries_json(ids BIGINT[]) RETURNS VOID LANGUAGE SQL AS $$
    UPDATE runs r SET summaries_json = coalesce((
        SELECT json_agg(json_build_array(s.key, s.goal, s.count, s.nan_count, s.last,
                   s.last_step, s.min, s.max, s.best, s.best_step) ORDER BY s.key)::TEXT
        FROM metric_summaries s WHERE s.run_id = r.id), '[]')
    WHERE r.id = ANY(ids);
$$;

CREATE FUNCTION summaries_json_after_write() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_summaries_json(ARRAY(SELECT DISTINCT run_id FROM changed));
    RETURN NULL;
END
$$;

-- A transition table serves one event per trigger, hence three.
CREATE TRIGGER summaries_json_insert AFTER INSERT ON metric_summaries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION summaries_json_after_write();
CREATE TRIGGER summaries_json_update AFTER UPDATE ON metric_summaries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION summaries_json_after_write();
CREATE TRIGGER summaries_json_delete AFTER DELETE ON metric_summaries
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION summaries_json_after_write();

SELECT refresh_summaries_json(ARRAY(SELECT id FROM runs));
