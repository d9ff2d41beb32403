-- Run once by the mariadb image on first start of an empty volume
-- (docker-compose.yml mounts this directory at /docker-entrypoint-initdb.d).
-- The entrypoint has already created 'mungmo'@'%' from MARIADB_USER/MARIADB_PASSWORD.
-- Mirrors what scripts/stack provisions for the plain-process stack.
CREATE DATABASE IF NOT EXISTS `mungMo` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS `mungmoMember` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
GRANT ALL PRIVILEGES ON `mungMo`.* TO 'mungmo'@'%';
GRANT ALL PRIVILEGES ON `mungmoMember`.* TO 'mungmo'@'%';
-- Tests create their own mungmo_test_* databases through the admin (root) URL.
GRANT ALL PRIVILEGES ON `mungmo\_test\_%`.* TO 'mungmo'@'%';
-- The source reads information_schema.INNODB_TRX (open transactions) so it never skips rows.
GRANT PROCESS ON *.* TO 'mungmo'@'%';
-- Change data capture reads the binary log as a replica (REPLICATION CLIENT is BINLOG MONITOR's alias).
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'mungmo'@'%';
