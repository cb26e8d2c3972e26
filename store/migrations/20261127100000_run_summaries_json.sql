-- Each run carries its metric summaries as one JSON text, kept in step with metric_summaries by
-- triggers, so that listing 10k runs with their summaries copies text instead of formatting 50k
-- JSON arrays at read time (number formatting dominated that list).
-- Element: [key, goal, count, nan_count, last, last_step, min, max, best, best_step], by key.
-- Numbers go through quote(), which round-trips every double (JSON's own formatting keeps 15
-- digits); infinities are the strings 'inf' / '-inf' (JSON has none).
ALTER TABLE runs ADD COLUMN summaries_json TEXT NOT NULL DEFAULT '[]';

CREATE TRIGGER run_summaries_json_insert AFTER INSERT ON metric_summaries BEGIN
    UPDATE runs SET summaries_json = (SELECT coalesce(json_group_array(json(item)), '[]') FROM (
            SELECT json_array(key, goal, count, nan_count,
                CASE WHEN last IS NULL THEN NULL WHEN abs(last) > 1.7976931348623157e308
                     THEN CASE WHEN last > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(last)) END,
                last_step,
                CASE WHEN min IS NULL THEN NULL WHEN abs(min) > 1.7976931348623157e308
                     THEN CASE WHEN min > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(min)) END,
                CASE WHEN max IS NULL THEN NULL WHEN abs(max) > 1.7976931348623157e308
                     THEN CASE WHEN max > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(max)) END,
                CASE WHEN best IS NULL THEN NULL WHEN abs(best) > 1.7976931348623157e308
                     THEN CASE WHEN best > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(best)) END,
                best_step) AS item
            FROM metric_summaries WHERE run_id = NEW.run_id ORDER BY key))
    WHERE id = NEW.run_id;
END;

CREATE TRIGGER run_summaries_json_update AFTER UPDATE ON metric_summaries BEGIN
    UPDATE runs SET summaries_json = (SELECT coalesce(json_group_array(json(item)), '[]') FROM (
            SELECT json_array(key, goal, count, nan_count,
                CASE WHEN last IS NULL THEN NULL WHEN abs(last) > 1.7976931348623157e308
                     THEN CASE WHEN last > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(last)) END,
                last_step,
                CASE WHEN min IS NULL THEN NULL WHEN abs(min) > 1.7976931348623157e308
                     THEN CASE WHEN min > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(min)) END,
                CASE WHEN max IS NULL THEN NULL WHEN abs(max) > 1.7976931348623157e308
                     THEN CASE WHEN max > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(max)) END,
                CASE WHEN best IS NULL THEN NULL WHEN abs(best) > 1.7976931348623157e308
                     THEN CASE WHEN best > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(best)) END,
                best_step) AS item
            FROM metric_summaries WHERE run_id = NEW.run_id ORDER BY key))
    WHERE id = NEW.run_id;
END;

CREATE TRIGGER run_summaries_json_delete AFTER DELETE ON metric_summaries BEGIN
    UPDATE runs SET summaries_json = (SELECT coalesce(json_group_array(json(item)), '[]') FROM (
            SELECT json_array(key, goal, count, nan_count,
                CASE WHEN last IS NULL THEN NULL WHEN abs(last) > 1.7976931348623157e308
                     THEN CASE WHEN last > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(last)) END,
                last_step,
                CASE WHEN min IS NULL THEN NULL WHEN abs(min) > 1.7976931348623157e308
                     THEN CASE WHEN min > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(min)) END,
                CASE WHEN max IS NULL THEN NULL WHEN abs(max) > 1.7976931348623157e308
                     THEN CASE WHEN max > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(max)) END,
                CASE WHEN best IS NULL THEN NULL WHEN abs(best) > 1.7976931348623157e308
                     THEN CASE WHEN best > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(best)) END,
                best_step) AS item
            FROM metric_summaries WHERE run_id = OLD.run_id ORDER BY key))
    WHERE id = OLD.run_id;
END;

UPDATE runs SET summaries_json = (SELECT coalesce(json_group_array(json(item)), '[]') FROM (
            SELECT json_array(key, goal, count, nan_count,
                CASE WHEN last IS NULL THEN NULL WHEN abs(last) > 1.7976931348623157e308
                     THEN CASE WHEN last > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(last)) END,
                last_step,
                CASE WHEN min IS NULL THEN NULL WHEN abs(min) > 1.7976931348623157e308
                     THEN CASE WHEN min > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(min)) END,
                CASE WHEN max IS NULL THEN NULL WHEN abs(max) > 1.7976931348623157e308
                     THEN CASE WHEN max > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(max)) END,
                CASE WHEN best IS NULL THEN NULL WHEN abs(best) > 1.7976931348623157e308
                     THEN CASE WHEN best > 0 THEN 'inf' ELSE '-inf' END
                     ELSE json(quote(best)) END,
                best_step) AS item
            FROM metric_summaries WHERE run_id = runs.id ORDER BY key));
