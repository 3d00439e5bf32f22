DROP TABLE pgtender_alert_state;
