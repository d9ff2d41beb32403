"""Tables the tests create: the team's seed table ``test001``."""

TEST001 = """
CREATE TABLE test001 (
  seq INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  member_name VARCHAR(50) NOT NULL,
  pet_name VARCHAR(50) NULL,
  walk_note TEXT NULL,
  weight_kg DECIMAL(5,2) NULL,
  neutered TINYINT(1) NOT NULL DEFAULT 0,
  born DATE NULL,
  created_at DATETIME(3) NOT NULL
) DEFAULT CHARSET=utf8mb4
"""
