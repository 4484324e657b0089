-- reverts 0006_reports.up.sql (its indexes go with the table).
drop table reports;
