DROP TABLE ab_testing_experiments;
DROP TABLE recommendations;
DROP TABLE predictions;
DROP TABLE pattern_occurrences;
DROP TABLE identified_patterns;
