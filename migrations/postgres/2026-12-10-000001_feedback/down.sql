DROP TABLE feedback_votes;
