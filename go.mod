module ddgi

go 1.22
